"""The load generator: one process, uvloop when installed, raw HTTP/1.1, SSE and websocket framing.

    python -m bench.capacity.client      # reads one JSON job on stdin (see bench_capacity.py)

Protocol with the orchestrator, one line each: job (JSON) on stdin → set-up (threads created,
sockets opened, connections made) → "ready" on stdout → "go" on stdin → the measured phase → one
JSON result line on stdout. The orchestrator reads the servers' CPU time between "ready"/"go" and
the result, so set-up is never counted. The client reports its own CPU time for the phase too: if it
approaches one core, the client (not the server) limits the figures.

Tokens are " w<i>" (bench/capacity/upstream.py); a stream's received indices are kept, so lost and
duplicated deltas are counted exactly even if a server merges deltas.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import secrets
import struct
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

TOKEN = re.compile(rb" w(\d+)")
WS_DELTA = re.compile(rb'<div hx-swap-oob="beforeend:#m-msg_\w+-body">(.*?)</div>', re.S)
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


# --- the phases -------------------------------------------------------------------------------------
async def chat_stream(job: dict[str, Any], go: asyncio.Event) -> Result:
    """POST /v1/chat/completions stream=true to the upstream directly or to a proxy."""
    r = Result()
    await go.wait()
    t0 = time.perf_counter()
    try:
        conn = await Http.open(job["host"], job["port"])
        body = {
            "model": job["model"],
            "stream": True,
            "stream_options": {"include_usage": True},
            "messages": [{"role": "user", "content": job["prompt"]}],
        }
        conn.send(
            "POST",
            job["path"],
            {**job.get("headers", {}), "Content-Type": "application/json"},
            json.dumps(body).encode(),
        )
        status, h = await conn.head()
        if status != 200:
            r.error = f"HTTP {status}: {_short(b''.join([p async for p in conn.body(h)]))}"
        else:
            await read_sse(conn, h, r, t0, "chat")
        conn.close()
    except Exception as exc:
        r.error = r.error or f"{type(exc).__name__}: {exc}"
    return r


async def v1_stream(job: dict[str, Any], go: asyncio.Event, thread_id: str | None) -> Result:
    """Create the thread (unless given: then it was made during set-up), then POST a stream=true run."""
    r = Result()
    auth = {"Authorization": f"Bearer {job['key']}", "OpenAI-Beta": "assistants=v2"}
    await go.wait()
    t0 = time.perf_counter()
    try:
        conn = await Http.open(job["host"], job["port"])
        if thread_id is None:
            status, obj = await conn.json(
                "POST", "/v1/threads", auth, {"messages": [{"role": "user", "content": job["prompt"]}]}
            )
            if status != 200:
                raise RuntimeError(f"thread: HTTP {status}: {_short(obj)}")
            thread_id = obj["id"]
        conn.send(
            "POST",
            f"/v1/threads/{thread_id}/runs",
            {**auth, "Content-Type": "application/json"},
            json.dumps({"assistant_id": job["assistant_id"], "stream": True}).encode(),
        )
        status, h = await conn.head()
        if status != 200:
            r.error = f"run: HTTP {status}: {_short(b''.join([p async for p in conn.body(h)]))}"
        else:
            await read_sse(conn, h, r, t0, "v1")
        conn.close()
    except Exception as exc:
        r.error = r.error or f"{type(exc).__name__}: {exc}"
    return r


async def make_threads(job: dict[str, Any], n: int) -> list[str]:
    auth = {"Authorization": f"Bearer {job['key']}", "OpenAI-Beta": "assistants=v2"}
    sem = asyncio.Semaphore(20)

    async def one() -> str:
        async with sem:
            conn = await Http.open(job["host"], job["port"])
            try:
                status, obj = await conn.json(
                    "POST",
                    "/v1/threads",
                    {**auth, "Connection": "close"},
                    {"messages": [{"role": "user", "content": job["prompt"]}]},
                )
            finally:
                conn.close()
            if status != 200:
                raise RuntimeError(f"thread: HTTP {status}: {_short(obj)}")
            return str(obj["id"])

    return list(await asyncio.gather(*(one() for _ in range(n))))


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


async def chat_send(
    job: dict[str, Any], user: dict[str, str], tab: str, text: str, conn: Http | None = None
) -> tuple[int, bytes]:
    conn = conn or await Http.open(job["host"], job["port"])
    body = ("text=" + text.replace(" ", "+")).encode()
    conn.send(
        "POST",
        "/chat/send/",
        {
            "Cookie": f"sessionid={user['session']}; csrftoken={user['csrf']}",
            "X-CSRFToken": user["csrf"],
            "HX-Request": "true",
            "X-Chat-Tab": tab,
            "Origin": f"http://{conn.host}",
            "Connection": "close",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        body,
    )
    try:
        status, h = await conn.head()
        data = b"".join([p async for p in conn.body(h)])
    finally:
        conn.close()
    return status, data


async def ws_chat(
    job: dict[str, Any], ws: WS, user: dict[str, str], tab: str, go: asyncio.Event, sends: int
) -> list[Result]:
    """`sends` chat messages one after another on one socket: POST /chat/send/, follow, read to the end."""
    await go.wait()
    results = []
    for _ in range(sends):
        r = Result()
        results.append(r)
        t0 = time.perf_counter()
        try:
            status, data = await chat_send(job, user, tab, job["prompt"])
            m = FOLLOW.search(data)
            if status != 200 or m is None:
                r.error = f"send: HTTP {status}: {_short(re.sub(rb'<[^>]+>', b' ', data).decode('utf-8', 'replace'))}"
                continue
            ws.send_text(json.dumps({"follow": m.group(1).decode()}))
            while not r.status:
                for fr in await asyncio.wait_for(ws.frames(), job["timeout"]):
                    for d in WS_DELTA.findall(fr):
                        _tokens(r, TOKEN.findall(d), t0)
                    # The run is over when the run controls are redrawn without the progress marker.
                    last = fr.rfind(b'id="run-controls"')
                    if last >= 0 and b"data-run-active" not in fr[last : fr.find(b"</div>", last)]:
                        r.status = "ended"
        except Exception as exc:
            r.error = r.error or f"{type(exc).__name__}: {exc}"
    return results


async def burst(
    job: dict[str, Any], users: list[dict[str, str]], ready: Any, go: asyncio.Event
) -> list[Result]:
    """Every user's connection made first, then every POST written at the same instant."""
    sem = asyncio.Semaphore(100)

    async def connect() -> Http | None:
        async with sem:
            try:
                return await Http.open(job["host"], job["port"])
            except OSError:
                return None

    conns = await asyncio.gather(*(connect() for _ in users))
    ready()

    async def one(conn: Http | None, user: dict[str, str], i: int) -> Result:
        r = Result()
        if conn is None:
            r.error = "could not connect"
            return r
        t0 = time.perf_counter()
        try:
            status, data = await chat_send(job, user, f"burst{i}", job["prompt"], conn)
            r.ttft = time.perf_counter() - t0
            if status != 200 or not FOLLOW.search(data):
                r.error = f"send: HTTP {status}: {_short(re.sub(rb'<[^>]+>', b' ', data).decode('utf-8', 'replace'))}"
        except Exception as exc:
            r.error = f"{type(exc).__name__}: {exc}"
        return r

    await go.wait()
    return list(
        await asyncio.gather(*(one(c, u, i) for i, (c, u) in enumerate(zip(conns, users, strict=True))))
    )


# --- driver -----------------------------------------------------------------------------------------
async def run(job: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    go = asyncio.Event()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

    def ready() -> None:
        sys.stdout.write("ready\n")
        sys.stdout.flush()

    mode, n = job["mode"], job["n"]
    Http.timeout = float(job.get("timeout", 120))
    tasks: list[Any]
    if mode == "chat":

        async def chats() -> list[Result]:
            return [await chat_stream(job, go) for _ in range(job.get("sends", 1))]

        tasks = [asyncio.ensure_future(chats()) for _ in range(n)]
        ready()
    elif mode == "v1":
        threads: list[str | None] = [None] * n
        if job.get("pre_create_threads", True):
            threads = list(await make_threads(job, n))
        tasks = [asyncio.ensure_future(v1_stream(job, go, t)) for t in threads]
        ready()
    elif mode == "v1_runs":

        async def worker() -> list[Result]:
            return [await v1_stream(job, go, None) for _ in range(job["sends"])]

        tasks = [asyncio.ensure_future(worker()) for _ in range(n)]
        ready()
    elif mode == "ws":
        users = job["users"][:n]
        sem = asyncio.Semaphore(50)

        tabs = [f"bench{i}-{secrets.token_hex(3)}" for i in range(len(users))]

        async def opened(u: dict[str, str], tab: str) -> WS:
            async with sem:
                return await WS.open(job, u, tab)

        sockets = await asyncio.gather(*(opened(u, t) for u, t in zip(users, tabs, strict=True)))
        await asyncio.sleep(0.5)  # let each socket's connect-time lookups finish outside the phase
        tasks = [
            asyncio.ensure_future(ws_chat(job, s, u, t, go, job.get("sends", 1)))
            for s, u, t in zip(sockets, users, tabs, strict=True)
        ]
        ready()
    elif mode == "burst":
        tasks = [asyncio.ensure_future(burst(job, job["users"][:n], ready, go))]
    else:
        raise SystemExit(f"unknown mode {mode}")
    line = await reader.readline()
    if line.strip() != b"go":
        raise SystemExit("no go")
    cpu0, wall0 = time.process_time(), time.perf_counter()
    go.set()
    done = await asyncio.gather(*tasks)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    flat: list[Result] = []
    for d in done:
        flat.extend(d if isinstance(d, list) else [d])
    if mode == "ws":
        for s in sockets:
            s.conn.close()
    return {
        "client_cpu_s": cpu,
        "wall_s": wall,
        "results": [
            {**{k: v for k, v in asdict(r).items() if k != "seen"}, "distinct": len(r.seen)} for r in flat
        ],
    }


def main() -> None:
    job = json.loads(sys.stdin.readline())
    try:
        import uvloop

        out = uvloop.run(run(job))
        out["loop"] = "uvloop"
    except ImportError:
        out = asyncio.run(run(job))
        out["loop"] = "asyncio"
    sys.stdout.write(json.dumps(out) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
