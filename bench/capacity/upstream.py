"""A paced, OpenAI-compatible Chat Completions upstream for capacity runs, in its own process.

    python -m bench.capacity.upstream [--tokens 200] [--rate 50]     # prints its base URL

Each streamed completion sends `tokens` content deltas " w0", " w1", … at `rate` per second (0: all
at once), then finish_reason "stop", the usage chunk when asked (stream_options.include_usage) and
[DONE]. The last user message may override both with `tokens=N` and `rate=R`, so one upstream serves
long streams, 5-word replies and bursts, through our server and through a proxy alike.

Why not tests/fakes/upstream.py: it is a thread per connection, each sleeping in select() between
deltas; 500 streams at 50 tokens/s (25,000 deltas/s) would make it the bottleneck and its CPU would
steal the cores being measured. Here one asyncio ticker (every TICK seconds) writes every delta that
is due, like a batching inference server emitting one token per sequence per step, and chunks are
pre-encoded bytes. The first delta goes out as soon as the request is read, so time to first token
is not rounded to a tick.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import sys
import time
from dataclasses import dataclass
from typing import Any

TICK = 0.005
_TOKENS = re.compile(r"tokens=(\d+)")
_RATE = re.compile(r"rate=(\d+(?:\.\d+)?)")


def _chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


@dataclass
class Stream:
    writer: asyncio.StreamWriter
    prefix: bytes
    suffix: bytes
    tail: bytes
    tokens: int
    start: float
    interval: float
    sent: int
    done: asyncio.Future[bool]

    def due(self, now: float) -> int:
        if self.interval <= 0:
            return self.tokens
        return min(self.tokens, int((now - self.start) / self.interval) + 1)


class Upstream:
    def __init__(self, tokens: int, rate: float) -> None:
        self.tokens = tokens
        self.rate = rate
        self.active: list[Stream] = []
        self.wake = asyncio.Event()
        self.requests = 0
        self.deltas = 0

    # --- the ticker: one loop writes every due delta of every stream
    async def ticker(self) -> None:
        while True:
            if not self.active:
                self.wake.clear()
                await self.wake.wait()
            now = time.monotonic()
            still: list[Stream] = []
            for s in self.active:
                if s.writer.is_closing():
                    s.done.set_result(False)
                    continue
                n = s.due(now)
                if n > s.sent:
                    s.writer.write(
                        b"".join(_chunked(b"%s w%d%s" % (s.prefix, i, s.suffix)) for i in range(s.sent, n))
                    )
                    self.deltas += n - s.sent
                    s.sent = n
                if s.sent >= s.tokens:
                    s.writer.write(s.tail)
                    s.done.set_result(True)
                else:
                    still.append(s)
            self.active = still
            await asyncio.sleep(TICK)

    # --- HTTP/1.1 with keep-alive
    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {
                    k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
                }
                body = await reader.readexactly(int(headers.get("content-length") or 0))
                keep = headers.get("connection", "").lower() != "close"
                path = path.split("?")[0]
                if method == "GET" and path.endswith("/models"):
                    self._json(
                        writer,
                        200,
                        {
                            "object": "list",
                            "data": [{"id": "bench", "object": "model", "created": 0, "owned_by": "bench"}],
                        },
                        keep,
                    )
                elif method == "POST" and path.endswith("/chat/completions"):
                    if not await self._completion(writer, json.loads(body or b"{}"), keep):
                        break
                else:
                    self._json(
                        writer,
                        404,
                        {
                            "error": {
                                "message": f"no route {path}",
                                "type": "invalid_request_error",
                                "param": None,
                                "code": None,
                            }
                        },
                        keep,
                    )
                await writer.drain()
                if not keep:
                    break
        except (asyncio.IncompleteReadError, ConnectionError, ValueError):
            pass
        finally:
            writer.close()

    def _json(self, writer: asyncio.StreamWriter, status: int, obj: Any, keep: bool) -> None:
        payload = json.dumps(obj).encode()
        writer.write(
            b"HTTP/1.1 %d X\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: %s\r\n\r\n%s"
            % (status, len(payload), b"keep-alive" if keep else b"close", payload)
        )

    async def _completion(self, writer: asyncio.StreamWriter, body: dict[str, Any], keep: bool) -> bool:
        self.requests += 1
        text = _last_user_text(body)
        m, r = _TOKENS.search(text), _RATE.search(text)
        tokens = int(m.group(1)) if m else self.tokens
        rate = float(r.group(1)) if r else self.rate
        model = str(body.get("model") or "bench")
        cid = f"chatcmpl-{secrets.token_hex(8)}"
        created = int(time.time())
        if not body.get("stream"):
            content = "".join(f" w{i}" for i in range(tokens))
            self._json(
                writer,
                200,
                {
                    "id": cid,
                    "object": "chat.completion",
                    "created": created,
                    "model": model,
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": content},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": tokens + 10},
                },
                keep,
            )
            return True
        head = json.dumps({"id": cid, "object": "chat.completion.chunk", "created": created, "model": model})[
            :-1
        ]
        prefix = (f'data: {head}, "choices": [{{"index": 0, "delta": {{"content": "').encode()
        suffix = b'"}, "finish_reason": null}]}\n\n'
        role = f'data: {head}, "choices": [{{"index": 0, "delta": {{"role": "assistant", "content": ""}}, "finish_reason": null}}]}}\n\n'
        stop = f'data: {head}, "choices": [{{"index": 0, "delta": {{}}, "finish_reason": "stop"}}]}}\n\n'
        tail = [_chunked(stop.encode())]
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 10, "completion_tokens": tokens, "total_tokens": tokens + 10}
            tail.append(_chunked(f'data: {head}, "choices": [], "usage": {json.dumps(usage)}}}\n\n'.encode()))
        tail += [_chunked(b"data: [DONE]\n\n"), b"0\r\n\r\n"]
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n"
            b"Transfer-Encoding: chunked\r\nConnection: %s\r\n\r\n" % (b"keep-alive" if keep else b"close")
        )
        writer.write(_chunked(role.encode()))
        stream = Stream(
            writer,
            prefix,
            suffix,
            b"".join(tail),
            tokens,
            time.monotonic(),
            1.0 / rate if rate > 0 else 0.0,
            0,
            asyncio.get_running_loop().create_future(),
        )
        # The first delta leaves now; the ticker sends the rest on schedule.
        if tokens:
            writer.write(_chunked(b"%s w0%s" % (prefix, suffix)))
            stream.sent = 1
            self.deltas += 1
        self.active.append(stream)
        self.wake.set()
        return await stream.done


def _last_user_text(body: dict[str, Any]) -> str:
    for m in reversed(body.get("messages") or []):
        if isinstance(m, dict) and m.get("role") == "user":
            c = m.get("content")
            if isinstance(c, str):
                return c
            if isinstance(c, list):
                return " ".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
    return ""


async def serve(tokens: int, rate: float, port: int) -> None:
    up = Upstream(tokens, rate)
    server = await asyncio.start_server(up.handle, "127.0.0.1", port, backlog=4096, limit=1 << 20)
    ticker = asyncio.ensure_future(up.ticker())
    print(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1", flush=True)
    loop = asyncio.get_running_loop()
    stop = loop.create_future()

    # The parent closes our stdin to stop us (or we get SIGTERM).
    def on_stdin() -> None:
        if not os.read(sys.stdin.fileno(), 1 << 16) and not stop.done():
            stop.set_result(None)

    loop.add_reader(sys.stdin.fileno(), on_stdin)
    await stop
    ticker.cancel()
    server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=200)
    ap.add_argument("--rate", type=float, default=50.0)
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.run(serve(args.tokens, args.rate, args.port))
    except ImportError:
        asyncio.run(serve(args.tokens, args.rate, args.port))


if __name__ == "__main__":
    main()
