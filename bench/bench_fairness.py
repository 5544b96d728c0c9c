"""How long another user's run waits behind one user's flood (issue 9, item 5), on a live server.

Alice queues N runs (each reply streams for about --seconds), then Bob queues one; reported: Bob's
wait from creation to start (started_at - created_at), and how many of Alice's runs started before
his. The per-user cap is lifted for Alice's flood (RUN_MAX_ACTIVE_PER_USER=0) to show the ordering.

    .venv/bin/python -m bench.bench_fairness [--runs 200] [--seconds 1.0] [--root DIR]
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=1.0)
    parser.add_argument("--root", default=str(ROOT))
    args = parser.parse_args()
    sys.path.insert(0, args.root)
    from tests.fakes.upstream import text
    from tests.support import live_server as api_live

    server = api_live.start_server(RUN_MAX_ACTIVE_PER_USER="0", RUN_CONCURRENCY="32")
    try:
        alice, bob = server.client("alice", max_retries=0), server.client("bob", max_retries=0)
        a_asst = alice.beta.assistants.create(model="m")
        b_asst = bob.beta.assistants.create(model="m")
        server.upstream.script(*[text("ok", " done", delay=args.seconds) for _ in range(args.runs + 1)])
        thread = {"messages": [{"role": "user", "content": "hi"}]}
        with ThreadPoolExecutor(8) as pool:
            flood = list(
                pool.map(
                    lambda _: alice.beta.threads.create_and_run(assistant_id=a_asst.id, thread=thread),  # type: ignore[arg-type]
                    range(args.runs),
                )
            )
        run = bob.beta.threads.create_and_run(assistant_id=b_asst.id, thread=thread)  # type: ignore[arg-type]
        deadline = time.monotonic() + 600
        while True:
            current = bob.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id)
            if current.started_at or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        started = current.started_at
        before = 0
        for r in flood:
            a = alice.beta.threads.runs.retrieve(r.id, thread_id=r.thread_id)
            if a.started_at and started and a.started_at < started:
                before += 1
        wait = (started - current.created_at) if started else None
        print(
            f"{args.runs} runs of ~{args.seconds}s queued by one user: another user's run waited "
            f"{wait}s (whole seconds, as the API reports) with {before} of the flood started before it"
        )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
