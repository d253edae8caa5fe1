"""`keras-sagan explore`: a local web page for a generator's samples, attention maps and interpolations.

`session.Explorer` answers the page's requests from a model; `server.make_server` serves the
page (`page.html`) and the JSON API with the standard library's `http.server`.
"""
