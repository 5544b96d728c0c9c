"""The chat page's own performance (issue 11.4) and the first message after a start (issue 12.5).

    .venv/bin/python -m bench.bench_chat --part server    # switching among 1,000 conversations
    .venv/bin/python -m bench.bench_chat --part browser   # a reply streamed at 200 tokens/s, in Chromium
    .venv/bin/python -m bench.bench_chat --part first     # first vs. second message after `serve` starts
    .venv/bin/python -m bench.bench_chat --part render --tokens 2000   # server CPU of streaming renders
    .venv/bin/python -m bench.bench_chat --part first --root /path/to/other/checkout   # the same, older code

server: in-process (Django test client, SQLite), one user with 1,000 conversations of 20 messages
each; the time is the server's (the request through middleware, view, queries and templates).
browser: a live `manage.py serve` and the HTTP fake upstream sending one token per 5 ms; a
PerformanceObserver collects long tasks and a MutationObserver counts how often the reply's text
grows. first: `serve` is started, and as soon as it accepts connections a run is created through
/v1 and polled to its end; then a second one.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# --- switching conversations ---------------------------------------------------------------------
def server_part(conversations: int, messages: int, samples: int) -> None:
    tmp = tempfile.mkdtemp(prefix="bench-chat-")
    os.environ.update(
        DATA_DIR=tmp,
        DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3",
        LOG_LEVEL="WARNING",
        ALLOWED_HOSTS="testserver",
    )
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    import django

    django.setup()
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext
    from django.utils import timezone

    from assistants_app.models import Assistant, Message, Thread

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    call_command("migrate", verbosity=0)
    Assistant.objects.create(name="Helper", model="m", is_default=True)
    user = get_user_model().objects.create_user("bench", password="x")
    now = timezone.now()
    threads = Thread.objects.bulk_create(
        [
            Thread(
                owner=user,
                is_chat=True,
                title=f"Conversation {i}",
                last_activity_at=now - timezone.timedelta(minutes=i),
            )
            for i in range(conversations)
        ]
    )
    words = "the quick brown fox jumps over the lazy dog while **markdown** and `code` render".split()
    rows = []
    for t in threads:
        for j in range(messages):
            body = " ".join(random.choices(words, k=40))
            rows.append(
                Message(
                    thread=t,
                    role="user" if j % 2 == 0 else "assistant",
                    content=[{"type": "text", "text": {"value": body, "annotations": []}}],
                    search_text=body.casefold(),
                )
            )
    Message.objects.bulk_create(rows, batch_size=2000)
    client = Client()
    client.force_login(user)
    hx = {"HTTP_HX_REQUEST": "true", "HTTP_HX_TARGET": "chat"}

    def timed(url: str, **headers: str) -> tuple[float, int]:
        with CaptureQueriesContext(connection) as q:
            start = time.perf_counter()
            response = client.get(url, **headers)
            took = (time.perf_counter() - start) * 1000
        assert response.status_code == 200, (url, response.status_code)
        return took, len(q)

    for t in threads[:20]:  # warm caches (templates, the first connection)
        timed(f"/c/{t.id}/", **hx)
    results: dict[str, tuple[list[float], int]] = {}
    for name, url, headers in (
        ("switch (pane only, HTMX)", "/c/{id}/", hx),
        ("open a conversation (full page, with the list)", "/c/{id}/", {}),
        ("conversation list page", "/chat/conversations/", {"HTTP_HX_REQUEST": "true"}),
        (
            "search title + text (20k messages)",
            "/chat/conversations/?q=lazy+dog+while",
            {"HTTP_HX_REQUEST": "true"},
        ),
    ):
        times, queries = [], 0
        for _ in range(samples):
            t = random.choice(threads)
            took, queries = timed(url.format(id=t.id), **headers)
            times.append(took)
        results[name] = (times, queries)
    print(f"\n{conversations} conversations x {messages} messages, SQLite, {samples} requests each\n")
    print("| request | p50 (ms) | p99 (ms) | queries |")
    print("|---|---|---|---|")
    for name, (times, queries) in results.items():
        print(f"| {name} | {statistics.median(times):.2f} | {pct(times, 99):.2f} | {queries} |")


# --- the page at 200 tokens/s ------------------------------------------------------------------------
def browser_part(tokens: int, per_second: float) -> None:
    from playwright.sync_api import sync_playwright

    from tests.fakes.upstream import text
    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, send, sign_up
    from tests.support.live_server import start_server

    lines = []
    for i in range(tokens):
        if i % 120 == 0:
            lines.append("\n\n```python\n" if i % 240 == 0 else "\n```\n\n")
        lines.append(f"tok{i} " if i % 12 else f"**t{i}**\n")
    with sync_playwright() as p:
        server = start_server()  # the tests' live server, with its own fake upstream
        up = server.upstream
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            sign_up(page, server.origin)
            page.evaluate(
                """() => {
                window.__long = [];
                new PerformanceObserver((l) => l.getEntries().forEach((e) => window.__long.push([e.startTime, e.duration])))
                    .observe({type: 'longtask', buffered: true});
                window.__growth = [];
                const seen = {len: 0};
                new MutationObserver(() => {
                    const a = document.querySelector('article.msg-assistant.is-streaming .msg-body');
                    if (!a) return;
                    const n = a.textContent.length;
                    if (n > seen.len) { seen.len = n; window.__growth.push(performance.now()); }
                }).observe(document.getElementById('messages'), {childList: true, subtree: true, characterData: true});
            }"""
            )
            up.script(text(*lines, delay=1 / per_second))
            page.evaluate("window.__long = []")
            send(page, "stream a long one")
            page.wait_for_function(
                "() => { const a = [...document.querySelectorAll('article.msg-assistant')];"
                " return a.length && a[a.length - 1].dataset.status === 'completed'; }",
                timeout=120_000,
            )
            growth = page.evaluate("window.__growth")
            entries = page.evaluate("window.__long")
            long_tasks = [d for _, d in entries]
            if entries:
                print(
                    "long tasks (ms after the first growth, duration):",
                    [(round(t - growth[0]), round(d)) for t, d in entries],
                )
        finally:
            browser.close()
            server.stop()
    span = (growth[-1] - growth[0]) / 1000 if len(growth) > 1 else float("nan")
    gaps = [b - a for a, b in itertools.pairwise(growth)]
    print(f"\n{tokens} tokens at {per_second:.0f} tokens/s (one token per chunk)\n")
    print(
        "| text growth events | over (s) | per second | gap p50 / p99 (ms) | long tasks > 50 ms | longest task (ms) |"
    )
    print("|---|---|---|---|---|---|")
    print(
        f"| {len(growth)} | {span:.2f} | {len(growth) / span:.1f} | {statistics.median(gaps):.0f} / "
        f"{pct(gaps, 99):.0f} | {len(long_tasks)} | {max(long_tasks, default=0):.0f} |"
    )


# --- the first message after a start ------------------------------------------------------------------
def first_part(root: Path) -> None:
    import json
    import urllib.request

    from tests.fakes.upstream import FakeUpstream
    from tests.support.live_server import free_port

    with FakeUpstream() as up, tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
        env.update(
            DATA_DIR=tmp,
            DATABASE_URL=f"sqlite:///{tmp}/db.sqlite3",
            MODEL_BACKEND="openai",
            OPENAI_BASE_URL=up.base_url,
            OPENAI_API_KEY="x",
            LOG_LEVEL="WARNING",
            RUN_POLL_SECONDS="0.2",
        )

        def manage(*args: str) -> str:
            return subprocess.run(
                [sys.executable, "manage.py", *args],
                cwd=root,
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout

        manage("migrate", "--noinput")
        key = manage("create_api_key", "bench", "--create-user").strip().splitlines()[-1].strip()
        port = free_port()
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--port", str(port)],
            cwd=root,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import socket

        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.02)
        listening = time.monotonic() - started

        # Plain HTTP, not the SDK: the SDK's own first-use costs (lazy imports, model building)
        # would be counted as the server's.
        def call(method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/v1{path}",
                data=json.dumps(body).encode() if body is not None else None,
                method=method,
                headers={
                    "Authorization": f"Bearer {key}",
                    "OpenAI-Beta": "assistants=v2",
                    "Content-Type": "application/json",
                },
            )
            with urllib.request.urlopen(req, timeout=30) as r:
                return dict(json.loads(r.read()))

        times = []
        try:
            assistant = call("POST", "/assistants", {"model": "fake-model"})
            for i in range(3):
                t0 = time.monotonic()
                run = call(
                    "POST",
                    "/threads/runs",
                    {
                        "assistant_id": assistant["id"],
                        "thread": {"messages": [{"role": "user", "content": f"hello {i}"}]},
                    },
                )
                while run["status"] not in ("completed", "failed", "cancelled", "expired", "incomplete"):
                    time.sleep(0.005)
                    run = call("GET", f"/threads/{run['thread_id']}/runs/{run['id']}")
                assert run["status"] == "completed", run
                times.append((time.monotonic() - t0) * 1000)
        finally:
            proc.terminate()
            proc.wait(timeout=20)
    print(f"\ncode at {root}: listening {listening:.2f} s after start")
    print("| run after start | time to completed (ms) |")
    print("|---|---|")
    for i, t in enumerate(times, 1):
        print(f"| {i} | {t:.0f} |")


# --- the server's cost of rendering while streaming ---------------------------------------------------
def render_part(tokens: int) -> None:
    """CPU per reply of the partial renders at 200 tokens/s and 10 renders/s (one render per 20
    tokens): LiveMarkdown (last block only) vs. rendering the whole text so far each time."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "chatsite.settings"
    import django

    django.setup()
    from assistants_app.web.rendering import LiveMarkdown, markdown_to_html

    chunks = []
    for i in range(tokens):
        if i % 150 == 0:
            chunks.append("\n\n```python\n" if i % 300 == 0 else "\n```\n\n")
        chunks.append(f"word{i} " if i % 15 else f"**w{i}**\n\n")
    live, text, t_live, t_full, renders = LiveMarkdown(), "", 0.0, 0.0, 0
    for i, c in enumerate(chunks):
        live.append(c)
        text += c
        if i % 20 == 19:
            renders += 1
            t0 = time.perf_counter()
            live.render()
            t1 = time.perf_counter()
            markdown_to_html(text)
            t_live, t_full = t_live + t1 - t0, t_full + time.perf_counter() - t1
    t0 = time.perf_counter()
    markdown_to_html(text)
    final = time.perf_counter() - t0
    print(f"\n{tokens}-token reply ({len(text)} characters), {renders} partial renders\n")
    print("| renderer | CPU for all partial renders (ms) | per render (ms) | final render (ms) |")
    print("|---|---|---|---|")
    print(
        f"| LiveMarkdown (last block) | {t_live * 1000:.0f} | {t_live * 1000 / renders:.2f} | {final * 1000:.1f} |"
    )
    print(
        f"| whole text each time | {t_full * 1000:.0f} | {t_full * 1000 / renders:.2f} | {final * 1000:.1f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--part", choices=["server", "browser", "first", "render"], required=True)
    parser.add_argument("--conversations", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=20)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--root", type=Path, default=ROOT)
    args = parser.parse_args()
    if args.part == "server":
        server_part(args.conversations, args.messages, args.samples)
    elif args.part == "render":
        render_part(args.tokens)
    elif args.part == "browser":
        browser_part(args.tokens, args.rate)
    else:
        first_part(args.root)


if __name__ == "__main__":
    main()
