"""CPU per upstream chunk of the model backend alone, with no engine, database or event log.

    .venv/bin/python -m bench.bench_backend                          # defaults below
    .venv/bin/python -m bench.bench_backend --streams 1,10 --tokens 1000 --modes burst,paced

The upstream is `bench/capacity/upstream.py` in its own process (so its CPU is not counted here), which
streams `tokens` pre-encoded content chunks per request. Paths read the same streams:

- `backend`: `OpenAICompatBackend.stream()`, the code under test, to its last event;
- `sdk`: `client.chat.completions.create(stream=True)` iterated chunk by chunk (a pydantic
  `ChatCompletionChunk` per chunk: what the backend did before it read the stream itself);
- `aiohttp`: the same HTTP response read with `aiter_bytes()` through the SDK's aiohttp client (what
  the backend uses) and thrown away: the floor, HTTP only;
- `httpx`: the same with a plain `httpx2.AsyncClient` (httpcore and h11: the backend's HTTP before
  the tenth session).

Modes: `burst` sends each stream's chunks all at once (few reads, many chunks each: the parsing cost);
`paced` sends them at `--rate` per stream and second, so most reads carry one chunk, as with a real
model (this adds an event-loop wake-up per read, which costs 130-250 us of CPU on these shared VMs);
`short` is `--short` 5-chunk streams, 10 at a time, all at once: the cost per request.

CPU is this process's user+system time (`time.process_time()`), divided by the content chunks read.
"others" is how many cores everything else on the machine kept busy meanwhile (the upstream excluded).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
os.environ.setdefault("LOG_LEVEL", "WARNING")  # httpx logs every request at INFO

from bench.capacity.phase import machine_cpu  # noqa: E402
from bench.capacity.procs import PROCS, cpu_seconds, install_cleanup  # noqa: E402

Reader = Callable[[str, int, float], Awaitable[int]]


OPEN: list[Any] = []  # the floor paths' clients, closed at the end (aiohttp's must be)
READ_INTERVAL = 0.0  # --read-interval-ms: the backend's pacing (UPSTREAM_READ_INTERVAL_MS)
HISTORY: list[dict[str, Any]] = []  # --history: earlier turns sent before the last user message


def _body(tokens: int, rate: float) -> dict[str, Any]:
    return {
        "model": "bench",
        "messages": [*HISTORY, {"role": "user", "content": f"tokens={tokens} rate={rate:g}"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }


def readers(base_url: str) -> dict[str, Callable[[], Reader]]:
    """Each factory returns a reader; a reader streams one completion and returns its content chunks."""
    import httpx2

    from assistants_app.backends.base import ChatRequest, TextDelta
    from assistants_app.backends.client import build_client
    from assistants_app.backends.openai_compat import OpenAICompatBackend

    def backend() -> Reader:
        be = OpenAICompatBackend(base_url, "bench", max_retries=0, read_interval=READ_INTERVAL)

        async def read(_: str, tokens: int, rate: float) -> int:
            body = _body(tokens, rate)
            req = ChatRequest(model=body["model"], messages=body["messages"])
            n = 0
            async for ev in be.stream(req):
                if type(ev) is TextDelta:
                    n += ev.text.count(" w")  # chunks that arrived together come as one delta
            return n

        return read

    def sdk() -> Reader:
        client = build_client(base_url, "bench")

        async def read(_: str, tokens: int, rate: float) -> int:
            n = 0
            stream: Any = await client.chat.completions.create(**_body(tokens, rate))
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    n += chunk.choices[0].delta.content.count(" w")
            return n

        return read

    def floor(client: httpx2.AsyncClient) -> Reader:
        OPEN.append(client)

        async def read(_: str, tokens: int, rate: float) -> int:
            url = f"{base_url}/chat/completions"
            async with client.stream("POST", url, json=_body(tokens, rate)) as response:
                async for _chunk in response.aiter_bytes():
                    pass
            return tokens

        return read

    def aiohttp() -> Reader:
        import openai

        return floor(openai.DefaultAioHttpClient(timeout=60, limits=httpx2.Limits(max_connections=1000)))

    def httpx() -> Reader:
        return floor(httpx2.AsyncClient(timeout=60, limits=httpx2.Limits(max_connections=1000)))

    return {"backend": backend, "sdk": sdk, "aiohttp": aiohttp, "httpx": httpx}


async def measure(read: Reader, streams: int, tokens: int, rate: float, repeats: int) -> dict[str, float]:
    await read("warm-up", 5, 0)
    cpu0, wall0, machine0 = time.process_time(), time.monotonic(), machine_cpu()
    up0 = cpu_seconds([UPSTREAM_PID])
    chunks = 0
    for _ in range(repeats):
        got = await asyncio.gather(*(read(str(i), tokens, rate) for i in range(streams)))
        chunks += sum(got)
        if any(g != tokens for g in got):
            raise RuntimeError(f"expected {tokens} chunks per stream, got {got}")
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    others = machine_cpu() - machine0 - cpu - (cpu_seconds([UPSTREAM_PID]) - up0)
    return {"chunks": chunks, "cpu": cpu, "wall": wall, "us": cpu / chunks * 1e6, "others": others / wall}


UPSTREAM_PID = 0


async def main_async(args: argparse.Namespace, base_url: str) -> list[dict[str, Any]]:
    factories = readers(base_url)
    rows = []
    for mode in args.modes.split(","):
        rate = args.rate if mode == "paced" else 0.0
        tokens = 5 if mode == "short" else args.tokens
        for streams in [10] if mode == "short" else [int(s) for s in args.streams.split(",")]:
            repeats = 1
            if mode == "burst":
                repeats = max(1, args.chunks // (streams * tokens))
            elif mode == "short":
                repeats = max(1, args.short // streams)
            for path in args.paths.split(","):
                m = await measure(factories[path](), streams, tokens, rate, repeats)
                m["per_stream_ms"] = m["cpu"] / (streams * repeats) * 1e3
                row = {"mode": mode, "streams": streams, "path": path, **m}
                print(
                    f"# {mode} {streams} {path}: {m['us']:.1f} us/chunk ({m['chunks']} chunks, "
                    f"others {m['others']:.2f} cores)",
                    file=sys.stderr,
                )
                rows.append(row)
    from assistants_app.backends.client import close_clients

    await close_clients()
    for client in OPEN:
        await client.aclose()
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--streams", default="1,10")
    ap.add_argument("--tokens", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=200.0, help="chunks per second per stream when paced")
    ap.add_argument("--chunks", type=int, default=20000, help="chunks per cell in burst mode (at least)")
    ap.add_argument("--short", type=int, default=500, help="streams in the short mode")
    ap.add_argument("--modes", default="burst,paced,short")
    ap.add_argument(
        "--history", type=int, default=0, help="earlier messages (~60 words each) in every request"
    )
    ap.add_argument(
        "--read-interval-ms", type=float, default=0, help="the backend path's UPSTREAM_READ_INTERVAL_MS"
    )
    ap.add_argument("--paths", default="backend,sdk,aiohttp,httpx")
    args = ap.parse_args()
    global READ_INTERVAL
    READ_INTERVAL = args.read_interval_ms / 1000
    words = " ".join(["history"] * 60)
    HISTORY.extend(
        {"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}: {words}"}
        for i in range(args.history)
    )

    import django

    django.setup()
    install_cleanup()
    up = PROCS.start(
        "upstream",
        [sys.executable, "-m", "bench.capacity.upstream", "--tokens", str(args.tokens)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert up.stdout is not None
        base_url = up.stdout.readline().decode().strip()
        global UPSTREAM_PID
        UPSTREAM_PID = up.pid
        rows = asyncio.run(main_async(args, base_url))
    finally:
        PROCS.stop_all()
    print(
        f"Backend CPU per chunk, {args.tokens} content chunks per stream (short: 5), paced at "
        f"{args.rate:g}/s, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}\n"
    )
    print(
        "| mode | streams at once | path | chunks | CPU (s) | wall (s) | CPU per chunk (us) "
        "| CPU per stream (ms) | others' CPU (cores) |"
    )
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['streams']} | {r['path']} | {r['chunks']} | {r['cpu']:.2f} | "
            f"{r['wall']:.2f} | {r['us']:.1f} | {r['per_stream_ms']:.2f} | {r['others']:.2f} |"
        )


if __name__ == "__main__":
    main()
