"""A fake OpenAI Chat Completions server that speaks real HTTP on 127.0.0.1.

Tests and benchmarks point the real backend (and the real `openai` SDK) at it, so the whole HTTP path is
exercised: chunked SSE, status codes, headers, stalls, and the client closing a stream early.

    with FakeUpstream() as up:
        up.script(text("Hel", "lo"), error(500), tool_calls(("get_weather", '{"city": "Oslo"}')))
        backend = OpenAICompatBackend(up.base_url, "test-key", ...)
        ...
        assert up.requests[0]["model"] == "fake-model"

Scripted replies are consumed one per POST /v1/chat/completions, in order. With nothing scripted the
server answers "Echo: <last user message>" word by word, so a demo or browser test works unscripted.
"""

from __future__ import annotations

import json
import math
import secrets
import select
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

# How often blocked handlers re-check whether the client went away or the server is stopping.
_POLL_SECONDS = 0.02

_DEFAULT_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
}


# --------------------------------------------------------------------------------------------------
# Scripted replies


class Reply:
    """One scripted answer to a POST /v1/chat/completions."""

    def serve(self, h: _Handler, body: dict[str, Any]) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class _Completion(Reply):
    deltas: tuple[dict[str, Any], ...]
    finish_reason: str | None
    delay: float = 0.0
    usage: tuple[int, int] | None = None
    # Send the deltas, then keep the socket open without sending anything more.
    hang: bool = False
    # Hold the deltas from index `gate_after` on until `gate` is set (a test's "now go on").
    gate: threading.Event | None = field(default=None, compare=False)
    gate_after: int = 1

    def serve(self, h: _Handler, body: dict[str, Any]) -> None:
        if body.get("stream"):
            self._stream(h, body)
        elif self.hang:
            h.wait(math.inf)
            h.close_connection = True
        else:
            h.send_json(200, self._whole(body))

    def _stream(self, h: _Handler, body: dict[str, Any]) -> None:
        model = str(body.get("model", "fake-model"))
        cid = f"chatcmpl-{secrets.token_hex(8)}"
        first_role: dict[str, Any] = {"role": "assistant", "content": "" if _has_text(self.deltas) else None}
        h.start_sse()
        ok = h.event(_chunk(cid, model, first_role))
        for i, delta in enumerate(self.deltas):
            if not ok:
                break
            if self.gate is not None and i == self.gate_after:
                while ok and not self.gate.is_set():
                    ok = h.wait(_POLL_SECONDS)
                if not ok:
                    break
            if i and self.delay:
                ok = h.wait(self.delay)
                if not ok:
                    break
            ok = h.event(_chunk(cid, model, delta))
        if ok and self.hang:
            ok = h.wait(math.inf)
        if not ok or self.hang:
            # The body was cut short: this connection cannot be reused.
            h.close_connection = True
            return
        ok = h.event(_chunk(cid, model, {}, finish_reason=self.finish_reason))
        if ok and (body.get("stream_options") or {}).get("include_usage"):
            prompt, completion = self._usage(body)
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            ok = h.event(_chunk(cid, model, None, usage=usage))
        if ok:
            ok = h.send_chunk(b"data: [DONE]\n\n")
        if ok:
            h.end_chunks()
        else:
            h.close_connection = True

    def _usage(self, body: dict[str, Any]) -> tuple[int, int]:
        if self.usage is not None:
            return self.usage
        prompt = sum(len(_message_text(m).split()) for m in body.get("messages") or []) + 3
        return prompt, max(len(self.deltas), 1)

    def _whole(self, body: dict[str, Any]) -> dict[str, Any]:
        text = "".join(d.get("content") or "" for d in self.deltas)
        calls: dict[int, dict[str, Any]] = {}
        for d in self.deltas:
            for tc in d.get("tool_calls") or []:
                call = calls.setdefault(
                    tc["index"], {"id": "", "type": "function", "function": {"name": "", "arguments": ""}}
                )
                call["id"] = tc.get("id") or call["id"]
                fn = tc.get("function") or {}
                call["function"]["name"] += fn.get("name") or ""
                call["function"]["arguments"] += fn.get("arguments") or ""
        message: dict[str, Any] = {"role": "assistant", "content": text if _has_text(self.deltas) else None}
        if calls:
            message["tool_calls"] = [calls[i] for i in sorted(calls)]
        prompt, completion = self._usage(body)
        return {
            "id": f"chatcmpl-{secrets.token_hex(8)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": str(body.get("model", "fake-model")),
            "choices": [{"index": 0, "message": message, "finish_reason": self.finish_reason}],
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            },
        }


@dataclass(frozen=True)
class _Error(Reply):
    status: int
    message: str
    type_: str
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def serve(self, h: _Handler, body: dict[str, Any]) -> None:
        err = {"message": self.message, "type": self.type_, "param": None, "code": self.code}
        h.send_json(self.status, {"error": err}, headers=self.headers)


@dataclass(frozen=True)
class _Malformed(Reply):
    data: str
    after: tuple[str, ...] = ()

    def serve(self, h: _Handler, body: dict[str, Any]) -> None:
        if not body.get("stream"):
            h.send_raw(200, self.data.encode(), "application/json")
            return
        model = str(body.get("model", "fake-model"))
        h.start_sse()
        ok = h.event(_chunk("chatcmpl-malformed", model, {"role": "assistant", "content": ""}))
        for piece in self.after:
            ok = ok and h.event(_chunk("chatcmpl-malformed", model, {"content": piece}))
        ok = ok and h.send_chunk(f"data: {self.data}\n\n".encode())
        ok = ok and h.send_chunk(b"data: [DONE]\n\n")
        if ok:
            h.end_chunks()
        else:
            h.close_connection = True


@dataclass(frozen=True)
class _HangUp(Reply):
    def serve(self, h: _Handler, body: dict[str, Any]) -> None:
        h.close_connection = True  # read the request, answer nothing, close the socket


def hang_up() -> Reply:
    """Read the request and close the connection without a response (a server that died)."""
    return _HangUp()


def text(*chunks: str, delay: float = 0.0, usage: tuple[int, int] | None = None) -> Reply:
    """Stream `chunks` as content deltas, then finish_reason "stop".

    `delay` seconds pass between chunks. `usage` is (prompt_tokens, completion_tokens); None estimates it.
    """
    return _Completion(tuple({"content": c} for c in chunks), "stop", delay=delay, usage=usage)


def gated(*chunks: str, gate: threading.Event, after: int = 1) -> Reply:
    """Like `text`, but only the first `after` chunks come at once: the rest wait until `gate` is set."""
    return _Completion(tuple({"content": c} for c in chunks), "stop", gate=gate, gate_after=after)


def length(*chunks: str, delay: float = 0.0, usage: tuple[int, int] | None = None) -> Reply:
    """Like `text`, but the model ran out of tokens: finish_reason "length"."""
    return _Completion(tuple({"content": c} for c in chunks), "length", delay=delay, usage=usage)


def tool_calls(
    *calls: tuple[str, str], split: int = 3, delay: float = 0.0, usage: tuple[int, int] | None = None
) -> Reply:
    """Stream parallel tool calls, as OpenAI does: each call's id and name first, then its arguments
    in `split` pieces; finish_reason "tool_calls". `calls` are (function name, arguments JSON) pairs."""
    deltas: list[dict[str, Any]] = []
    for index, (name, arguments) in enumerate(calls):
        head = {
            "index": index,
            "id": f"call_{secrets.token_hex(12)}",
            "type": "function",
            "function": {"name": name, "arguments": ""},
        }
        deltas.append({"tool_calls": [head]})
        for piece in _split(arguments, split):
            deltas.append({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    return _Completion(tuple(deltas), "tool_calls", delay=delay, usage=usage)


def error(
    status: int,
    message: str = "",
    type_: str = "",
    headers: dict[str, str] | None = None,
    *,
    code: str | None = None,
) -> Reply:
    """A non-streamed OpenAI-style error body `{"error": {...}}` with this HTTP status (and headers,
    e.g. {"retry-after": "0"})."""
    return _Error(
        status,
        message or f"Fake upstream error {status}",
        type_ or _DEFAULT_ERROR_TYPES.get(status, "server_error"),
        code,
        dict(headers or {}),
    )


def hang(after: Sequence[str] = ()) -> Reply:
    """Stream the `after` chunks, then send nothing more while keeping the socket open, until the client
    closes it or the server stops."""
    return _Completion(tuple({"content": c} for c in after), None, hang=True)


def malformed(
    data: str = '{"id": "chatcmpl-bad", "choices": [{"delta": {"content": "oops"',
    *,
    after: Sequence[str] = (),
) -> Reply:
    """A stream whose data line is `data` verbatim (invalid JSON by default; pass valid JSON of the wrong
    shape to test shape checks), preceded by the `after` content chunks."""
    return _Malformed(data, tuple(after))


def _split(s: str, pieces: int) -> Iterator[str]:
    pieces = max(1, pieces)
    size = max(1, math.ceil(len(s) / pieces))
    for i in range(0, len(s), size):
        yield s[i : i + size]


def _has_text(deltas: Iterable[dict[str, Any]]) -> bool:
    return any("content" in d for d in deltas) or not any("tool_calls" in d for d in deltas)


def _chunk(
    cid: str,
    model: str,
    delta: dict[str, Any] | None,
    *,
    finish_reason: str | None = None,
    usage: dict[str, int] | None = None,
) -> dict[str, Any]:
    chunk: dict[str, Any] = {
        "id": cid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        # OpenAI's usage-only chunk has an empty choices list.
        "choices": [] if delta is None else [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }
    if usage is not None:
        chunk["usage"] = usage
    return chunk


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _echo(body: dict[str, Any]) -> Reply:
    users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    words = _message_text(users[-1]).split() if users else []
    return text("Echo:", *(f" {w}" for w in words))


# --------------------------------------------------------------------------------------------------
# HTTP server


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive + chunked, like a real upstream
    server: _Server

    def setup(self) -> None:
        super().setup()
        self.server.upstream._track(self.connection)

    def finish(self) -> None:
        self.server.upstream._untrack(self.connection)
        super().finish()

    def log_message(self, format: str, *args: Any) -> None:
        pass  # request logs would drown test output

    # --- routes

    def do_GET(self) -> None:
        if self.path.split("?")[0] == "/v1/models":
            self.server.upstream._note_models_request()
            models = [
                {"id": m, "object": "model", "created": 0, "owned_by": "fake-upstream"}
                for m in self.server.upstream.model_ids
            ]
            self.send_json(200, {"object": "list", "data": models})
        else:
            self._not_found()

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.path.split("?")[0] != "/v1/chat/completions":
            self._not_found()
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            error(400, "We could not parse the JSON body of your request.").serve(self, {})
            return
        reply = self.server.upstream._next_reply(body, dict(self.headers.items()))
        reply.serve(self, body)

    def _not_found(self) -> None:
        error(404, f"Unknown path {self.path}").serve(self, {})

    # --- writing helpers used by replies

    def send_raw(
        self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        try:
            self.wfile.write(payload)
        except OSError:
            self.close_connection = True

    def send_json(self, status: int, obj: Any, headers: dict[str, str] | None = None) -> None:
        self.send_raw(status, json.dumps(obj).encode(), "application/json", headers)

    def start_sse(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def send_chunk(self, data: bytes) -> bool:
        """Write one HTTP chunk; False if the client has gone (which is then counted)."""
        if self._client_gone():
            return self._gone()
        try:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        except OSError:
            return self._gone()
        return True

    def event(self, obj: Any) -> bool:
        return self.send_chunk(b"data: " + json.dumps(obj).encode() + b"\n\n")

    def end_chunks(self) -> None:
        try:
            self.wfile.write(b"0\r\n\r\n")
        except OSError:
            self.close_connection = True

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`; False early if the client closed the connection or the server stops."""
        deadline = time.monotonic() + seconds
        stopping = self.server.upstream._stopping
        while not stopping.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return True
            if self._client_gone(min(remaining, _POLL_SECONDS)):
                return self._gone()
        return False

    def _client_gone(self, timeout: float = 0.0) -> bool:
        # The client sends nothing while it reads a response, so a readable socket means EOF or reset.
        try:
            readable, _, _ = select.select([self.connection], [], [], timeout)
            if not readable:
                return False
            return bool(self.connection.recv(1, socket.MSG_PEEK) == b"")
        except (OSError, ValueError):
            return True

    def _gone(self) -> bool:
        self.close_connection = True
        if not self.server.upstream._stopping.is_set():
            self.server.upstream._note_closed_early()
        return False


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    # Benchmarks open hundreds of streams at once; the stdlib default backlog of 5 would refuse them.
    request_queue_size = 1024

    def __init__(self, upstream: FakeUpstream) -> None:
        self.upstream = upstream
        super().__init__(("127.0.0.1", 0), _Handler)


class FakeUpstream:
    """A real HTTP server imitating an OpenAI-compatible Chat Completions API. See the module docstring."""

    def __init__(
        self, model_ids: Sequence[str] = ("fake-model",), *, tls: ssl.SSLContext | None = None
    ) -> None:
        """`tls`: serve https with this server-side context."""
        self.model_ids = list(model_ids)
        self._tls = tls
        self._lock = threading.Lock()
        self._closed_cond = threading.Condition(self._lock)
        self._queue: deque[Reply] = deque()
        self._requests: list[dict[str, Any]] = []
        self._headers: list[dict[str, str]] = []
        self._closed_early = 0
        self._models_requests = 0
        self._connections: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle

    def start(self) -> Self:
        self._stopping.clear()
        self._server = _Server(self)
        if self._tls is not None:
            self._server.socket = self._tls.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-upstream",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving. Never blocks on open (even hanging) streams: their sockets are shut down."""
        if self._server is None:
            return
        self._stopping.set()
        self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=2)
        self._server = None
        self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- the test-facing API

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("FakeUpstream is not running: use it as a context manager or call start()")
        host, port = self._server.server_address[:2]
        return f"{'https' if self._tls else 'http'}://{host!s}:{port}/v1"

    def script(self, *replies: Reply) -> None:
        """Queue replies, consumed one per chat completion request, first in first out."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """How many scripted replies have not been used yet."""
        with self._lock:
            return len(self._queue)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Parsed JSON bodies of every chat completion request so far (a snapshot)."""
        with self._lock:
            return list(self._requests)

    @property
    def request_headers(self) -> list[dict[str, str]]:
        """Headers of every chat completion request, parallel to `requests`."""
        with self._lock:
            return list(self._headers)

    @property
    def closed_early(self) -> int:
        """How many streams the client closed before the server had finished sending them."""
        with self._lock:
            return self._closed_early

    @property
    def models_requests(self) -> int:
        """How many GET /v1/models requests arrived."""
        with self._lock:
            return self._models_requests

    def wait_closed_early(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Block until at least `count` streams were closed early by the client; False on timeout."""
        with self._closed_cond:
            return self._closed_cond.wait_for(lambda: self._closed_early >= count, timeout)

    # --- used by the handler

    def _next_reply(self, body: dict[str, Any], headers: dict[str, str]) -> Reply:
        with self._lock:
            self._requests.append(body)
            self._headers.append({k.lower(): v for k, v in headers.items()})
            if self._queue:
                return self._queue.popleft()
        return _echo(body)

    def _note_models_request(self) -> None:
        with self._lock:
            self._models_requests += 1

    def _note_closed_early(self) -> None:
        with self._closed_cond:
            self._closed_early += 1
            self._closed_cond.notify_all()

    def _track(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.add(conn)

    def _untrack(self, conn: socket.socket) -> None:
        with self._lock:
            self._connections.discard(conn)
