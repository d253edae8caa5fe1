"""The explorer's web server: the standard library's `http.server`, one static page and a small JSON API.

    GET /                 the page (`page.html`, packaged beside this module)
    GET /api/info         the model: variants, image size, classes, attention layers, caps
    GET /api/samples      ?variant&seed&num&truncation&label            -> PNG data URLs
    GET /api/attention    ... &index&row&col                            -> the maps of one query pixel
    GET /api/interpolate  ?variant&seed_a&seed_b&frames&mode&truncation&label_a&label_b -> frames and a GIF

Bad parameters answer 400 with `{"error": one line}`; anything else that fails answers 500 the
same way and the server keeps serving. Requests carry numbers and names only: no path is ever
read from one. It binds 127.0.0.1 unless the caller passes another host.
"""

from __future__ import annotations

import json
import pathlib
import sys
import traceback
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from keras_sagan.errors import UsageError, one_line

DEFAULT_HOST = "127.0.0.1"
PAGE = pathlib.Path(__file__).with_name("page.html")
MAX_QUERY_CHARS = 2000


def _handler(explorer, page: bytes):
    routes = {"/api/info": "info", "/api/samples": "samples", "/api/attention": "attention"}
    routes["/api/interpolate"] = "interpolate"

    class Handler(BaseHTTPRequestHandler):
        server_version = "keras-sagan-explorer"

        def log_message(self, format, *args):  # noqa: A002  (http.server's signature)
            pass  # Quiet: one line per request would drown the URL line.

        def _send(self, status, body: bytes, content_type: str):
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status, payload):
            self._send(status, json.dumps(payload).encode("utf-8"), "application/json")

        def do_GET(self):  # noqa: N802  (http.server's name)
            try:
                url = urlsplit(self.path)
                if url.path in ("/", "/index.html"):
                    return self._send(HTTPStatus.OK, page, "text/html; charset=utf-8")
                if url.path not in routes:
                    return self._json(HTTPStatus.NOT_FOUND, {"error": f"no such page: {url.path[:200]}"})
                if len(url.query) > MAX_QUERY_CHARS:
                    return self._json(HTTPStatus.BAD_REQUEST, {"error": "query string too long"})
                query = parse_qs(url.query, keep_blank_values=True)
                try:
                    payload = getattr(explorer, routes[url.path])(query)
                except (UsageError, ValueError, TypeError) as err:
                    return self._json(HTTPStatus.BAD_REQUEST, {"error": one_line(err)})
                return self._json(HTTPStatus.OK, payload)
            except (BrokenPipeError, ConnectionResetError):
                return None  # The browser went away; nothing to answer.
            except Exception as err:  # The server must outlive any request.
                traceback.print_exc(file=sys.stderr)
                try:
                    self._json(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": one_line(err)})
                except OSError:
                    pass
                return None

    return Handler


def make_server(explorer, host: str = DEFAULT_HOST, port: int = 8000) -> ThreadingHTTPServer:
    """A threading HTTP server for `explorer` (a `session.Explorer`) bound to `host:port` (port 0: a free one)."""
    server = ThreadingHTTPServer((host, port), _handler(explorer, PAGE.read_bytes()))
    server.daemon_threads = True
    return server
