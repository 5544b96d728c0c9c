"""What /v1 streaming adds on top of the model: N concurrent streaming runs through the real server's
SSE API versus reading the same fake upstream directly with the openai client.

    .venv/bin/python -m bench.bench_api_stream [--sizes 1,10,100] [--deltas 20] [--delay 0.02]

The server is `manage.py serve` (daphne + embedded executor, SQLite) in a subprocess, exactly as the
API tests start it. Every upstream chunk carries the wall-clock time it was sent, so each delta's
latency is end to end: upstream → engine → event log → SSE → SDK. Time to first token (TTFT) is
measured from the client's request (runs.create(stream=True) vs chat.completions.create).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

from bench.bench_engine import STAMP, direct, pct, stamped_reply  # noqa: E402


async def via_api(
    server: Any, n_runs: int, n_deltas: int, delay: float, assistant_id: str
) -> tuple[list[float], list[float], int, list[float]]:
    import openai

    client = openai.AsyncOpenAI(
        base_url=server.base_url, api_key=server.keys["alice"], max_retries=0, timeout=120
    )
    threads = await asyncio.gather(
        *(client.beta.threads.create(messages=[{"role": "user", "content": "hi"}]) for _ in range(n_runs))
    )
    server.upstream.script(*[stamped_reply(n_deltas, delay) for _ in range(n_runs)])
    lat: list[float] = []
    ttft: list[float] = []
    created: list[float] = []  # request → first SSE event (thread.run.created): the API's own share
    received = 0

    async def one(thread_id: str) -> None:
        nonlocal received
        t0 = time.time_ns()
        stream = await client.beta.threads.runs.create(
            thread_id=thread_id, assistant_id=assistant_id, stream=True
        )
        first = True
        async for event in stream:
            if event.event == "thread.run.created":
                created.append((time.time_ns() - t0) / 1e6)
            if event.event != "thread.message.delta":
                continue
            now = time.time_ns()
            for part in event.data.delta.content or []:
                for stamp in STAMP.findall(getattr(part.text, "value", "") or ""):  # type: ignore[union-attr]
                    if first:
                        ttft.append((now - t0) / 1e6)
                        first = False
                    lat.append((now - int(stamp)) / 1e6)
                    received += 1

    await asyncio.gather(*(one(t.id) for t in threads))
    await client.close()
    return lat, ttft, received, created


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b > 0 else "n/a"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default="1,10,100")
    parser.add_argument("--deltas", type=int, default=20, help="deltas per run")
    parser.add_argument("--delay", type=float, default=0.02, help="seconds between upstream deltas")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    import openai

    from tests.support.live_server import start_server

    # One key starts every run: lift the per-user cap (RUN_MAX_ACTIVE_PER_USER) for the benchmark.
    server = start_server(
        RUN_CONCURRENCY="256", LOG_LEVEL="ERROR", RUN_CHECKPOINT_SECONDS="1.0", RUN_MAX_ACTIVE_PER_USER="0"
    )
    rows: list[str] = []
    try:
        sync = openai.OpenAI(base_url=server.base_url, api_key=server.keys["alice"])
        assistant_id = sync.beta.assistants.create(model="gpt-4o").id
        asyncio.run(direct(server.upstream, 2, args.deltas, args.delay))  # warm-up both paths
        asyncio.run(via_api(server, 2, args.deltas, args.delay, assistant_id))
        for n in sizes:
            d_lat, d_ttft = asyncio.run(direct(server.upstream, n, args.deltas, args.delay))
            a_lat, a_ttft, received, a_created = asyncio.run(
                via_api(server, n, args.deltas, args.delay, assistant_id)
            )
            lost = n * args.deltas - received
            rows.append(
                f"| {n} | {pct(d_ttft, 50):.1f} | {pct(a_ttft, 50):.1f} | {pct(a_ttft, 50) - pct(d_ttft, 50):+.1f} "
                f"| {ratio(pct(a_ttft, 50), pct(d_ttft, 50))} "
                f"| {pct(d_lat, 50):.2f} / {pct(d_lat, 99):.2f} | {pct(a_lat, 50):.2f} / {pct(a_lat, 99):.2f} "
                f"| {pct(a_lat, 50) - pct(d_lat, 50):+.2f} / {pct(a_lat, 99) - pct(d_lat, 99):+.2f} "
                f"| {ratio(pct(a_lat, 50), pct(d_lat, 50))} / {ratio(pct(a_lat, 99), pct(d_lat, 99))} "
                f"| {pct(a_created, 50):.1f} / {pct(a_created, 99):.1f} | {lost} |"
            )
            print(rows[-1], flush=True)
    finally:
        server.stop()
    load = os.getloadavg()
    print()
    print(
        f"/v1 SSE streaming vs direct upstream: {args.deltas} deltas per run, {args.delay * 1000:.0f} ms apart; "
        f"ms; load average {load[0]:.1f} on {os.cpu_count()} cores"
    )
    print()
    print(
        "| concurrent runs | TTFT direct p50 | TTFT via /v1 p50 | added TTFT | TTFT ratio "
        "| delta latency direct p50 / p99 | via /v1 p50 / p99 | added p50 / p99 | ratio p50 / p99 "
        "| request → thread.run.created p50 / p99 | deltas lost |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        print(row)


if __name__ == "__main__":
    main()
