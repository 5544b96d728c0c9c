"""Wire formats for the load client: a minimal HTTP/1.1 connection (chunked bodies), SSE frames of
both the Assistants stream and Chat Completions, and the client side of RFC 6455 websockets.

Hand-written rather than httpx/websockets so that reading 25,000 deltas a second costs the client
little CPU (it reports its CPU per phase, to show it is not the bottleneck).
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import struct
import time
from dataclasses import dataclass, field
from typing import Any

TOKEN = re.compile(rb" w(\d+)")
# Chat page tokens are inside rendered Markdown ("<p>w0 w1 …"): the first loses its space.
WS_TOKEN = re.compile(rb"(?<![\w-])w(\d+)\b")
# The reply's final render (the history view's bubble), appended to or replacing it in #messages;
# its text is counted in the body only (the bubble also carries it for the copy button).
WS_FINAL = b'<div hx-swap-oob="beforeend:#messages">'
WS_FINAL_BODY = re.compile(rb'id="m-msg_\w+-body">(.*?)</div>', re.S)
FOLLOW = re.compile(rb'"follow": "(run_\w+)"')
TERMINAL = (
    b"thread.run.completed",
    b"thread.run.failed",
    b"thread.run.cancelled",
    b"thread.run.expired",
    b"thread.run.incomplete",
    b"thread.run.requires_action",
)


@dataclass
class Result:
    ttft: float | None = None  # seconds from request start to the first token
    last: float | None = None  # seconds from request start to the last token
    seen: set[int] = field(default_factory=set)
    received: int = 0
    error: str = ""
    status: str = ""


# --- HTTP/1.1 ---------------------------------------------------------------------------------------
class Http:
    """One connection; request() then body() iterates decoded body bytes (chunked or not)."""

    # Seconds of silence before a read fails (set from the job): a stuck server fails one stream,
    # not the whole phase.
    timeout = 120.0

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    async def read(self) -> bytes:
        return await asyncio.wait_for(self.reader.read(1 << 16), self.timeout)

    @classmethod
    async def open(cls, host: str, port: int) -> Http:
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 22)
        return cls(reader, writer, f"{host}:{port}")

    def send(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> None:
        head = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", f"Content-Length: {len(body)}"]
        head += [f"{k}: {v}" for k, v in headers.items()]
        self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)

    async def head(self) -> tuple[int, dict[str, str]]:
        raw = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), self.timeout)
        lines = raw.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
        return int(lines[0].split()[1]), headers

    async def body(self, headers: dict[str, str]):  # type: ignore[no-untyped-def]
        if "content-length" in headers:
            yield await self.reader.readexactly(int(headers["content-length"]))
            return
        if headers.get("transfer-encoding", "").lower() != "chunked":
            while data := await self.read():
                yield data
            return
        buf = b""
        while True:
            data = await self.read()
            if not data:
                raise ConnectionError("connection closed inside a chunked body")
            buf += data
            out: list[bytes] = []
            pos = 0
            while True:
                eol = buf.find(b"\r\n", pos)
                if eol < 0:
                    break
                size = int(buf[pos:eol].split(b";")[0], 16)
                if size == 0:
                    if out:
                        yield b"".join(out)
                    return
                end = eol + 2 + size
                if len(buf) < end + 2:
                    break
                out.append(buf[eol + 2 : end])
                pos = end + 2
            buf = buf[pos:]
            if out:
                yield b"".join(out)

    async def json(self, method: str, path: str, headers: dict[str, str], obj: Any) -> tuple[int, Any]:
        self.send(method, path, {**headers, "Content-Type": "application/json"}, json.dumps(obj).encode())
        status, h = await self.head()
        data = b"".join([piece async for piece in self.body(h)])
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data.decode("utf-8", "replace")

    def close(self) -> None:
        self.writer.close()


def _short(obj: Any) -> str:
    return re.sub(r"\s+", " ", str(obj))[:200]


async def read_sse(conn: Http, headers: dict[str, str], r: Result, t0: float, kind: str) -> None:
    """Read an SSE body to its end; count tokens in deltas. kind: "v1" (Assistants events) or "chat"."""
    buf = b""
    async for piece in conn.body(headers):
        buf += piece
        if b"\n\n" not in piece and b"\n\n" not in buf[-len(piece) - 1 :]:
            continue
        frames = buf.split(b"\n\n")
        buf = frames.pop()
        for fr in frames:
            if kind == "v1":
                if fr.startswith(b"event: thread.message.delta"):
                    _tokens(r, TOKEN.findall(fr), t0)
                elif fr.startswith(b"event: thread.run."):
                    name = fr[7 : fr.find(b"\n")]
                    if name in TERMINAL:
                        r.status = name.decode().removeprefix("thread.run.")
                        if r.status != "completed":
                            r.error = r.error or f"run {r.status}: {_run_error(fr)}"
                elif fr.startswith(b"event: error"):
                    r.error = r.error or f"SSE error: {_short(fr)}"
                elif fr.startswith(b"event: done"):
                    return
            else:
                if fr.startswith(b"data: [DONE]"):
                    r.status = r.status or "completed"
                    return
                if b'"error"' in fr[:30]:
                    r.error = r.error or f"SSE error: {_short(fr)}"
                _tokens(r, TOKEN.findall(fr), t0)


def _run_error(frame: bytes) -> str:
    """The run's last_error (or incomplete_details) from a terminal SSE frame."""
    try:
        run = json.loads(frame[frame.index(b"data: ") + 6 :])
        why = run.get("last_error") or run.get("incomplete_details") or {}
        return _short(f"{why.get('code', '')}: {why.get('message', why.get('reason', ''))}")
    except (ValueError, AttributeError):
        return _short(frame[:300])


def _tokens(r: Result, found: list[bytes], t0: float) -> None:
    if not found:
        return
    now = time.perf_counter() - t0
    if r.ttft is None:
        r.ttft = now
    r.last = now
    r.received += len(found)
    r.seen.update(int(x) for x in found)


# --- websocket (RFC 6455, client side: our frames are masked, the server's are not) -----------------
class WS:
    def __init__(self, conn: Http) -> None:
        self.conn = conn
        self.buf = b""

    @classmethod
    async def open(cls, job: dict[str, Any], user: dict[str, str], tab: str) -> WS:
        conn = await Http.open(job["host"], job["port"])
        conn.send(
            "GET",
            f"/ws/chat/?tab={tab}",
            {
                "Upgrade": "websocket",
                "Connection": "Upgrade",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
                "Origin": f"http://{conn.host}",
                "Cookie": f"sessionid={user['session']}; csrftoken={user['csrf']}",
            },
        )
        status, _ = await conn.head()
        if status != 101:
            conn.close()
            raise RuntimeError(f"websocket handshake: HTTP {status}")
        return cls(conn)

    def send_text(self, text: str) -> None:
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        head = struct.pack("!BB", 0x81, 0x80 | n) if n < 126 else struct.pack("!BBH", 0x81, 0x80 | 126, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(data))
        self.conn.writer.write(head + mask + masked)

    def _pong(self, payload: bytes) -> None:
        mask = os.urandom(4)
        self.conn.writer.write(
            struct.pack("!BB", 0x8A, 0x80 | len(payload))
            + mask
            + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        )

    async def frames(self) -> list[bytes]:
        """The next complete text frames (at least one); raises ConnectionError when closed."""
        out: list[bytes] = []
        while not out:
            data = await self.conn.reader.read(1 << 16)
            if not data:
                raise ConnectionError("websocket closed")
            self.buf += data
            pos = 0
            buf = self.buf
            while len(buf) - pos >= 2:
                op, n = buf[pos] & 0x0F, buf[pos + 1] & 0x7F
                hl = 2
                if n == 126:
                    if len(buf) - pos < 4:
                        break
                    n, hl = struct.unpack_from("!H", buf, pos + 2)[0], 4
                elif n == 127:
                    if len(buf) - pos < 10:
                        break
                    n, hl = struct.unpack_from("!Q", buf, pos + 2)[0], 10
                if len(buf) - pos < hl + n:
                    break
                payload = buf[pos + hl : pos + hl + n]
                pos += hl + n
                if op in (0, 1, 2):
                    out.append(payload)  # daphne does not fragment: continuation frames are appended as-is
                elif op == 9:
                    self._pong(payload)
                elif op == 8:
                    raise ConnectionError("websocket closed by the server")
            self.buf = buf[pos:]
        return out
