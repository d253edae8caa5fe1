"""`keras-sagan explore`: serve the explorer page for one model on a local port until Ctrl-C."""

from __future__ import annotations

import sys

from keras_sagan.errors import UsageError, bad_value


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "explore", help="A local web page: samples, attention maps of a clicked pixel, interpolation GIFs."
    )
    parser.add_argument(
        "--model", required=True, help="Run directory, .keras file, or SavedModel (sampling only; no maps)."
    )
    parser.add_argument(
        "--host",
        default="127.0.0.1",
        help="Address to bind. Default %(default)s (this machine only); another one exposes the page to the network.",
    )
    parser.add_argument("--port", type=int, default=8000, help="Port; 0 picks a free one. Default %(default)s.")
    parser.set_defaults(run=run)


def run(args) -> None:
    if not 0 <= args.port <= 65535:
        raise UsageError(bad_value("--port", args.port, "an int in [0, 65535] (0: a free port)"))
    from keras_sagan.explorer.server import make_server
    from keras_sagan.explorer.session import Explorer
    from keras_sagan.export.loading import load_generator_variants

    explorer = Explorer(load_generator_variants(args.model))
    server = make_server(explorer, args.host, args.port)
    host, port = server.server_address[:2]
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach this machine can use the page", file=sys.stderr)
    print(f"keras-sagan explorer: http://{host}:{port}/  ({explorer.info()['description']}; Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
