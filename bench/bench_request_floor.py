"""What one HTTP request costs the embedded server before any run is involved (issue 13's per-run goal).

A short /v1 run is two requests (create the thread with its message, create the streamed run) plus
the run's execution. This measures the server CPU of requests that do almost nothing, on the same
server `make run` starts (bench/capacity/setups.py `embedded`), so that the per-run figure can be read
against the floor the framework sets:

- `404`: an unknown /v1 path (Django's whole middleware chain and URL resolving; no query);
- `auth`: `GET /v1/assistants/<id>` (the API key lookup plus one SELECT);
- `list`: `GET /v1/threads/<id>/messages?limit=1` (key, thread, one page query);
- `thread`: `POST /v1/threads` with one message (the first request of a short run).

Requests go one at a time over one keep-alive connection; server CPU is read from /proc.

    .venv/bin/python -m bench.bench_request_floor [--n 500]
"""

from __future__ import annotations

import argparse
import http.client
import json
import time
from typing import Any

from bench.capacity import setups
from bench.capacity.procs import PROCS, cpu_seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=500, help="requests per kind")
    ap.add_argument("--reps", type=int, default=3, help="rounds over all kinds (the median is reported)")
    args = ap.parse_args()
    opts = argparse.Namespace(log_level="WARNING", run_concurrency=32, keep=False)
    # No run is made, so the upstream is never asked: an address nothing listens on will do.
    setup = setups.Embedded("http://127.0.0.1:9/v1", opts)
    try:
        info = setup.start(1)
        conn = http.client.HTTPConnection(info["host"], info["port"], timeout=30)
        auth = {"Authorization": f"Bearer {info['key']}", "OpenAI-Beta": "assistants=v2"}

        def call(method: str, path: str, body: Any = None) -> Any:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, path, body=data, headers={"Content-Type": "application/json", **auth})
            resp = conn.getresponse()
            out = resp.read()
            return json.loads(out) if resp.status < 300 else None

        thread = call("POST", "/v1/threads", {"messages": [{"role": "user", "content": "hi"}]})
        kinds = {
            "404": lambda: call("GET", "/v1/no-such-thing"),
            "auth": lambda: call("GET", f"/v1/assistants/{info['assistant_id']}"),
            "list": lambda: call("GET", f"/v1/threads/{thread['id']}/messages?limit=1"),
            "thread": lambda: call("POST", "/v1/threads", {"messages": [{"role": "user", "content": "hi"}]}),
        }
        for fn in kinds.values():  # warm
            for _ in range(20):
                fn()
        results: dict[str, list[float]] = {k: [] for k in kinds}
        walls: dict[str, list[float]] = {k: [] for k in kinds}
        pids = setup.cpu_groups()["web"]
        for _ in range(args.reps):
            for kind, fn in kinds.items():
                cpu0, t0 = cpu_seconds(pids), time.perf_counter()
                for _ in range(args.n):
                    fn()
                results[kind].append((cpu_seconds(pids) - cpu0) / args.n * 1000)
                walls[kind].append((time.perf_counter() - t0) / args.n * 1000)
        print(
            "| request | server CPU per request (ms), median of rounds | all rounds | wall per request (ms) |"
        )
        print("|---|---:|---|---:|")
        for kind in kinds:
            cpu = sorted(results[kind])
            print(
                f"| {kind} | {cpu[len(cpu) // 2]:.2f} | {' / '.join(f'{c:.2f}' for c in results[kind])} "
                f"| {sorted(walls[kind])[len(cpu) // 2]:.2f} |"
            )
    finally:
        setup.stop()
        PROCS.stop_all()


if __name__ == "__main__":
    main()
