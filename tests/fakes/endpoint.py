"""A function endpoint for tests: a real HTTP server on 127.0.0.1 that records every request.

    with FakeEndpoint() as ep:
        ep.url("/echo")          # answers {"method", "path", "query", "headers", "json"}
        ep.requests              # what arrived: Recorded(method, path, query, headers, body)

Routes: /echo; /text?bytes=N (N bytes of "x"); /gzip?bytes=N (N zero bytes, gzip-encoded: a
small answer that inflates); /status/<code>; /slow (answers when the server stops);
/redirect?to=<url>&code=<3xx>; /loop (redirects to itself).
"""

from __future__ import annotations

import gzip
import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    # Headers and body leave in separate writes: without this, each answer waits for a delayed ACK.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        parts = urlsplit(self.path)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        query = parse_qs(parts.query)
        self.server.owner.record(Recorded(self.command, parts.path, query, headers, body))
        path = parts.path
        if path == "/echo":
            decoded = json.loads(body) if body else None
            self._send(
                200, json.dumps({"method": self.command, "path": path, "query": query, "json": decoded})
            )
        elif path == "/text":
            self._send(200, "x" * int(query["bytes"][0]), "text/plain")
        elif path == "/gzip":
            data = gzip.compress(b"\0" * int(query["bytes"][0]))
            self._send(200, data, "application/octet-stream", {"Content-Encoding": "gzip"})
        elif path.startswith("/status/"):
            self._send(int(path.rsplit("/", 1)[1]), '{"error": "nope"}')
        elif path == "/slow":
            self.server.owner.stopping.wait(30)
            self._send(200, "late")
        elif path == "/loop":
            self._send(302, "", "text/plain", {"Location": "/loop"})
        elif path == "/redirect":
            code = int(query.get("code", ["302"])[0])
            self._send(code, "", "text/plain", {"Location": query["to"][0]})
        else:
            self._send(404, "no such route")

    def _send(
        self,
        code: int,
        body: str | bytes,
        ctype: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        data = body.encode() if isinstance(body, str) else body
        try:
            self.send_response(code)
            self.send_header("Content-Type", f"{ctype}; charset=utf-8" if ctype.startswith("text") else ctype)
            self.send_header("Content-Length", str(len(data)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, owner: FakeEndpoint) -> None:
        self.owner = owner
        super().__init__(("127.0.0.1", 0), _Handler)


class FakeEndpoint:
    """`tls`: serve https with this server-side context."""

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        self._lock = threading.Lock()
        self._requests: list[Recorded] = []
        self.stopping = threading.Event()
        self._server = _Server(self)
        self.scheme = "http"
        if tls is not None:
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05})
        self._thread.daemon = True

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"{self.scheme}://{host}:{self.port}{path}"

    def record(self, request: Recorded) -> None:
        with self._lock:
            self._requests.append(request)

    @property
    def requests(self) -> list[Recorded]:
        with self._lock:
            return list(self._requests)
