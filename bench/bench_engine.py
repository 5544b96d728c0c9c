"""Relay overhead of the run engine, and history reads on a 100,000-message thread.

    .venv/bin/python -m bench.bench_engine                 # in-process (SQLite, memory event log)
    .venv/bin/python -m bench.bench_engine --cross-process # worker process, PostgreSQL + Redis

Every upstream chunk carries the wall-clock time it was sent, so each delta's latency is measured
end to end: upstream send → engine → event log → reader. The baseline reads the same fake
upstream directly with the openai client at the same concurrency, in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
STAMP = re.compile(r"\[(\d+)\]")


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def _setup(cross: bool, tmp: str) -> dict[str, str]:
    env: dict[str, str] = {
        "DATA_DIR": tmp,
        "LOG_LEVEL": "WARNING",
        "RUN_CONCURRENCY": "256",
        "RUN_POLL_SECONDS": "0.05",
    }
    if cross:
        out = subprocess.run(
            ["bash", "scripts/services.sh", "start"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "ASSISTANTS_SERVICES_DIR": f"{tmp}/services"},
        )
        del out
        lines = subprocess.run(
            ["bash", "scripts/services.sh", "env"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "ASSISTANTS_SERVICES_DIR": f"{tmp}/services"},
        ).stdout
        for line in lines.splitlines():
            if line.startswith("export "):
                k, v = line[len("export ") :].split("=", 1)
                env[k] = v.strip("'\"")
        env["RUN_EXECUTOR"] = "external"
    else:
        env["DATABASE_URL"] = f"sqlite:///{tmp}/db.sqlite3"
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return env


def stamped_reply(n: int, delay: float) -> Any:
    from tests.fakes.upstream import Reply, _chunk

    class Stamped(Reply):
        def serve(self, h: Any, body: dict[str, Any]) -> None:
            cid = f"chatcmpl-{secrets.token_hex(6)}"
            model = str(body.get("model"))
            h.start_sse()
            ok = h.event(_chunk(cid, model, {"role": "assistant", "content": ""}))
            for i in range(n):
                if i and delay:
                    ok = ok and h.wait(delay)
                ok = ok and h.event(_chunk(cid, model, {"content": f"[{time.time_ns()}]"}))
            ok = ok and h.event(_chunk(cid, model, {}, finish_reason="stop"))
            usage = {"prompt_tokens": 5, "completion_tokens": n, "total_tokens": n + 5}
            ok = ok and h.event(_chunk(cid, model, None, usage=usage))
            ok = ok and h.send_chunk(b"data: [DONE]\n\n")
            if ok:
                h.end_chunks()

    return Stamped()


async def direct(up: Any, n_runs: int, n_deltas: int, delay: float) -> tuple[list[float], list[float]]:
    import openai

    client = openai.AsyncOpenAI(base_url=up.base_url, api_key="x", max_retries=0)
    up.script(*[stamped_reply(n_deltas, delay) for _ in range(n_runs)])
    lat: list[float] = []
    ttft: list[float] = []

    async def one() -> None:
        t0 = time.time_ns()
        stream = await client.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        first = True
        async for chunk in stream:
            now = time.time_ns()
            text = chunk.choices[0].delta.content if chunk.choices else None
            for stamp in STAMP.findall(text or ""):
                if first:
                    ttft.append((now - t0) / 1e6)
                    first = False
                lat.append((now - int(stamp)) / 1e6)

    await asyncio.gather(*(one() for _ in range(n_runs)))
    await client.close()
    return lat, ttft


async def via_engine(
    up: Any, n_runs: int, n_deltas: int, delay: float, assistant: Any, user: Any
) -> tuple[list[float], list[float], int]:
    from asgiref.sync import sync_to_async

    from assistants_app.runs.stream import follow
    from assistants_app.services import runs, threads

    up.script(*[stamped_reply(n_deltas, delay) for _ in range(n_runs)])
    lat: list[float] = []
    ttft: list[float] = []
    received = 0

    def prepare() -> Any:
        t = threads.create_thread(user)
        threads.post_message(t, role="user", content="hi")
        return t

    prepared = [await sync_to_async(prepare)() for _ in range(n_runs)]

    async def one(thread: Any) -> None:
        nonlocal received
        t0 = time.time_ns()
        run = await sync_to_async(runs.start_run)(thread, assistant)
        first = True
        async for ev in follow(run.id):
            if ev.event != "thread.message.delta":
                continue
            now = time.time_ns()
            for stamp in STAMP.findall(ev.data["delta"]["content"][0]["text"]["value"]):
                if first:
                    ttft.append((now - t0) / 1e6)
                    first = False
                lat.append((now - int(stamp)) / 1e6)
                received += 1

    await asyncio.gather(*(one(t) for t in prepared))
    return lat, ttft, received


def bench_relay(cross: bool, sizes: list[int], n_deltas: int, delay: float) -> list[str]:
    from asgiref.sync import async_to_sync
    from django.contrib.auth import get_user_model

    from assistants_app.models import Assistant
    from tests.fakes.upstream import FakeUpstream

    rows = []
    with FakeUpstream() as up:
        os.environ["OPENAI_BASE_URL"] = up.base_url
        os.environ["OPENAI_API_KEY"] = "x"
        from django.conf import settings

        settings.OPENAI_BASE_URL, settings.OPENAI_API_KEY, settings.MODEL_BACKEND = up.base_url, "x", "openai"
        settings.RUN_MAX_ACTIVE_PER_USER = 0  # one bench user starts hundreds of runs at once
        user = get_user_model().objects.create_user(f"bench{secrets.token_hex(3)}")
        assistant = Assistant.objects.create(owner=user, model="gpt-4o")
        worker = None
        executor = None
        if cross:
            worker = subprocess.Popen(
                [sys.executable, "manage.py", "run_worker", "--concurrency", "256"],
                cwd=ROOT,
                env=os.environ.copy(),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(3)
        else:
            from assistants_app.runs.executor import ThreadedExecutor

            executor = ThreadedExecutor(concurrency=256).start()
        try:
            async_to_sync(direct)(up, 2, n_deltas, delay)  # warm-up
            async_to_sync(via_engine)(up, 2, n_deltas, delay, assistant, user)
            for n in sizes:
                d_lat, d_ttft = async_to_sync(direct)(up, n, n_deltas, delay)
                e_lat, e_ttft, received = async_to_sync(via_engine)(up, n, n_deltas, delay, assistant, user)
                lost = n * n_deltas - received
                rows.append(
                    f"| {'cross-process' if cross else 'in-process'} | {n} | "
                    f"{pct(d_lat, 50):.2f} / {pct(d_lat, 99):.2f} | {pct(e_lat, 50):.2f} / {pct(e_lat, 99):.2f} | "
                    f"{pct(e_lat, 50) - pct(d_lat, 50):+.2f} | "
                    f"{pct(d_ttft, 50):.1f} | {pct(e_ttft, 50):.1f} | {pct(e_ttft, 50) - pct(d_ttft, 50):+.1f} | {lost} |"
                )
                print(rows[-1], flush=True)
        finally:
            if executor is not None:
                executor.stop()
            if worker is not None:
                worker.send_signal(signal.SIGTERM)
                worker.wait(15)
    return rows


def bench_history(n: int = 100_000) -> list[str]:
    from django.contrib.auth import get_user_model
    from django.db import connection

    from assistants_app.models import Assistant, Message
    from assistants_app.runs import state
    from assistants_app.runs.context import build_prompt, message_tokens
    from assistants_app.services import threads

    user = get_user_model().objects.create_user(f"hist{secrets.token_hex(3)}")
    thread = threads.create_thread(user)
    t0 = time.perf_counter()
    batch = []
    for i in range(n):
        content = [
            {"type": "text", "text": {"value": f"message {i} " + "lorem ipsum dolor " * 8, "annotations": []}}
        ]
        batch.append(
            Message(
                thread=thread,
                role="user" if i % 2 == 0 else "assistant",
                content=content,
                token_count=message_tokens(content),
            )
        )
        if len(batch) == 5000:
            Message.objects.bulk_create(batch)
            batch = []
    Message.objects.bulk_create(batch)
    insert_s = time.perf_counter() - t0
    a = Assistant.objects.create(owner=user, model="gpt-4o")
    run = state.create_run(thread=thread, assistant=a, assistant_ref=a.id, model="gpt-4o", instructions="x")

    def timeit(fn: Any, reps: int = 50) -> tuple[float, float]:
        xs = []
        for _ in range(reps):
            s = time.perf_counter()
            fn()
            xs.append((time.perf_counter() - s) * 1000)
        return pct(xs, 50), pct(xs, 99)

    from django.conf import settings

    newest = timeit(lambda: list(Message.objects.filter(thread=thread).order_by("-id")[:20]))
    # The real read paths: the API's list handler (thread lookup, page, serialization), the same
    # through Django's whole request stack (API key, middleware, JSON), and the chat page's history.
    from django.test import Client

    from assistants_app.api import messages as messages_api
    from assistants_app.api.routing import Ctx
    from assistants_app.services import chat, keys

    handler = timeit(lambda: messages_api.list_(Ctx(request=None, user=user, query={}), thread.id))  # type: ignore[arg-type]
    client = Client(HTTP_AUTHORIZATION=f"Bearer {keys.create_key(user).raw}", HTTP_HOST="localhost")
    url = f"/v1/threads/{thread.id}/messages?limit=20"

    def http_get() -> None:
        response = client.get(url)
        assert response.status_code == 200 and len(response.json()["data"]) == 20, response.content[:200]

    http = timeit(http_get)
    history = timeit(lambda: chat.history(thread))
    settings.MODEL_CONTEXT_TOKENS = 8192
    prompt_8k = timeit(lambda: build_prompt(run, [], []), reps=20)
    settings.MODEL_CONTEXT_TOKENS = 128_000
    prompt_128k = timeit(lambda: build_prompt(run, [], []), reps=10)
    with connection.cursor() as cur:
        sql, params = Message.objects.filter(thread=thread).order_by("-id")[:20].query.sql_with_params()
        if connection.vendor == "sqlite":
            cur.execute("EXPLAIN QUERY PLAN " + sql, params)
            plan = " / ".join(str(r[-1]) for r in cur.fetchall())
        else:
            cur.execute("EXPLAIN " + sql, params)
            plan = " / ".join(r[0].strip() for r in cur.fetchall()[:3])
    return [
        f"| insert {n:,} messages (bulk) | {insert_s:.1f} s | |",
        f"| newest 20 messages (ORM rows) | {newest[0]:.2f} ms | {newest[1]:.2f} ms |",
        f"| newest 20, API list handler (lookup + page + JSON objects) | {handler[0]:.2f} ms | {handler[1]:.2f} ms |",
        f"| newest 20, GET /v1/threads/{{id}}/messages through Django's stack | {http[0]:.2f} ms | {http[1]:.2f} ms |",
        f"| newest 20, chat page history (services.chat.history) | {history[0]:.2f} ms | {history[1]:.2f} ms |",
        f"| build_prompt, 8k-token window | {prompt_8k[0]:.2f} ms | {prompt_8k[1]:.2f} ms |",
        f"| build_prompt, 128k-token window (~4,000 messages fit) | {prompt_128k[0]:.2f} ms | {prompt_128k[1]:.2f} ms |",
        f"| query plan (newest 20) | {plan} | |",
    ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--cross-process", action="store_true")
    ap.add_argument("--sizes", default="1,10,100", help="concurrent runs ('' for the history part only)")
    ap.add_argument("--deltas", type=int, default=50)
    ap.add_argument("--delay", type=float, default=0.01)
    ap.add_argument(
        "--history", type=int, default=100_000, help="messages in the history benchmark (0 to skip)"
    )
    args = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-engine-")
    _setup(args.cross_process, tmp)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]  # --sizes '': history only
    if sizes:
        print(
            f"## Run relay ({'cross-process: run_worker + PostgreSQL + Redis' if args.cross_process else 'in-process: embedded executor + SQLite + memory log'})"
        )
        print(
            f"{args.deltas} deltas per run, {args.delay * 1000:.0f} ms apart; latency = reader receive time - upstream send time (ms)\n"
        )
        print(
            "| path | concurrent runs | direct p50 / p99 | via engine p50 / p99 | added p50 | direct TTFT p50 | engine TTFT p50 | added TTFT | deltas lost |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        bench_relay(args.cross_process, sizes, args.deltas, args.delay)
    if args.history:
        print(
            f"\n## History on a {args.history:,}-message thread ({'PostgreSQL' if args.cross_process else 'SQLite'})\n"
        )
        print("| operation | p50 | p99 |")
        print("|---|---|---|")
        for row in bench_history(args.history):
            print(row)
    if args.cross_process:
        subprocess.run(
            ["bash", "scripts/services.sh", "stop"],
            cwd=ROOT,
            env={**os.environ, "ASSISTANTS_SERVICES_DIR": f"{tmp}/services"},
            check=False,
        )


if __name__ == "__main__":
    main()
