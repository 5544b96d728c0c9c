"""The HTTP server's own defences, in front of Django: request body caps (bodies.py, applied inside
Twisted by http.py before a body is buffered), trusted proxies (proxies.py) and websocket origins
(origins.py). See docs/security.md, "The web server and the API"."""
