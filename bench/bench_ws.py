"""N concurrent websocket chats through a live `manage.py serve`, the model played by the HTTP fake
upstream in its own process.

For N in (10, 100, 1000) by default:
  * idle memory: RSS growth of the server process per open, authenticated, idle chat socket;
  * N chats at once: each POSTs a message (/chat/send/), asks its socket to follow the run, and reads
    the streamed fragments until the run ends. Every upstream chunk carries `index@send_time;`, so
    each delta's latency is (arrival at the websocket client - upstream send time), and every chat
    must see every index exactly once (lost = 0);
  * the upstream alone: the same N streams read straight from the fake upstream, for the baseline.
Added latency = through-the-server percentile - upstream-alone percentile.

    .venv/bin/python bench/bench_ws.py [--sizes 10,100,1000] [--chunks 20] [--delay 0.05]

1000 sockets need `ulimit -n` well above 2000 (the script raises its own soft limit when it can).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import re
import resource
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TOKEN = re.compile(r"(\d+)@(\d+\.\d+);")
DELTA = re.compile(r'<div hx-swap-oob="beforeend:#m-msg_\w+-body">(.*?)</div>', re.S)


# --- the upstream process ----------------------------------------------------------------------------
def serve_upstream(chunks: int, delay: float) -> None:
    """Run the fake upstream; every completion streams `chunks` timestamped tokens."""
    from tests.fakes import upstream as up

    class Timestamped(up.Reply):
        def serve(self, h: Any, body: dict[str, Any]) -> None:
            cid, model = f"chatcmpl-{secrets.token_hex(6)}", str(body.get("model", "m"))
            h.start_sse()
            ok = h.event(up._chunk(cid, model, {"role": "assistant", "content": ""}))
            for i in range(chunks):
                if not ok:
                    return
                if i:
                    ok = h.wait(delay)
                ok = ok and h.event(up._chunk(cid, model, {"content": f"{i}@{time.time():.6f};"}))
            if (
                ok
                and h.event(up._chunk(cid, model, {}, finish_reason="stop"))
                and h.send_chunk(b"data: [DONE]\n\n")
            ):
                h.end_chunks()

    class Upstream(up.FakeUpstream):
        def _next_reply(self, body: dict[str, Any], headers: dict[str, str]) -> up.Reply:
            return Timestamped()

    server = Upstream().start()
    server._server.request_queue_size = 4096  # type: ignore[union-attr]
    print(server.base_url, flush=True)
    try:
        sys.stdin.read()  # until the parent closes our stdin
    finally:
        server.stop()


# --- helpers -----------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


async def http_request(
    port: int, method: str, path: str, headers: dict[str, str], body: bytes = b""
) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = [
        f"{method} {path} HTTP/1.1",
        f"Host: 127.0.0.1:{port}",
        "Connection: close",
        f"Content-Length: {len(body)}",
    ]
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    status_line, _, rest = data.decode("utf-8", "replace").partition("\r\n")
    return int(status_line.split()[1]), rest.partition("\r\n\r\n")[2]


@dataclass
class Chat:
    index: int
    session: str
    csrf: str
    ws: Any = None
    run_id: str = ""
    latencies: list[float] = field(default_factory=list)
    seen: list[int] = field(default_factory=list)
    error: str = ""


# --- phases ------------------------------------------------------------------------------------------
async def upstream_alone(base_url: str, n: int) -> tuple[list[float], int]:
    """N streams straight from the upstream: the baseline latency of its own delivery."""
    host, port = base_url.removeprefix("http://").split("/")[0].split(":")
    lat: list[float] = []
    seen = 0

    async def one() -> None:
        nonlocal seen
        body = json.dumps(
            {"model": "m", "stream": True, "messages": [{"role": "user", "content": "x"}]}
        ).encode()
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST /v1/chat/completions HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
            + body
        )
        await writer.drain()
        while line := await reader.readline():
            now = time.time()
            for m in TOKEN.finditer(line.decode("utf-8", "replace")):
                lat.append(now - float(m.group(2)))
                seen += 1
        writer.close()

    await asyncio.gather(*(one() for _ in range(n)))
    return lat, seen


async def open_sockets(port: int, chats: list[Chat]) -> None:
    from websockets.asyncio.client import connect

    async def one(c: Chat) -> None:
        for attempt in range(3):
            try:
                c.ws = await attempt_connect(c)
                return
            except Exception as exc:
                c.error = f"connect attempt {attempt + 1}: {exc!r}"
        raise RuntimeError(c.error)

    async def attempt_connect(c: Chat) -> Any:
        return await connect(
            f"ws://127.0.0.1:{port}/ws/chat/?tab=bench{c.index}",
            origin=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
            additional_headers={"Cookie": f"sessionid={c.session}; csrftoken={c.csrf}"},
            open_timeout=120,
            ping_interval=None,
            max_size=None,
        )

    sem = asyncio.Semaphore(50)  # don't SYN-flood the listen backlog

    async def gated(c: Chat) -> None:
        async with sem:
            await one(c)

    await asyncio.gather(*(gated(c) for c in chats))


async def run_chat(port: int, c: Chat, chunks: int, sends: asyncio.Semaphore) -> None:
    body = b"text=count+for+me"
    async with sends:
        status, text = await send_message(port, c, body)
    m = re.search(r'"follow": "(run_\w+)"', text)
    if status != 200 or m is None:
        c.error = f"send: HTTP {status} " + re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", text))[:200]
        return
    c.run_id = m.group(1)
    await c.ws.send(json.dumps({"follow": c.run_id}))
    while True:
        try:
            frame = await asyncio.wait_for(c.ws.recv(), 120)
        except TimeoutError:
            c.error = f"run {c.run_id}: nothing for 120 s after {len(c.seen)} deltas"
            return
        now = time.time()
        for d in DELTA.finditer(frame):
            for t in TOKEN.finditer(html.unescape(d.group(1))):
                c.seen.append(int(t.group(1)))
                c.latencies.append(now - float(t.group(2)))
        last = frame.rfind('id="run-controls"')
        if last >= 0 and "data-run-active" not in frame[last:]:
            return


async def send_message(port: int, c: Chat, body: bytes) -> tuple[int, str]:
    return await http_request(
        port,
        "POST",
        "/chat/send/",
        {
            "Cookie": f"sessionid={c.session}; csrftoken={c.csrf}",
            "X-CSRFToken": c.csrf,
            "HX-Request": "true",
            "X-Chat-Tab": f"bench{c.index}",
            "Origin": f"http://127.0.0.1:{port}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        body,
    )


def make_users(n: int, offset: int) -> list[Chat]:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore

    prefix = f"bench-{secrets.token_hex(3)}-"  # a reused database may hold an earlier run's users
    users = User.objects.bulk_create([User(username=f"{prefix}{offset + i}", password="!") for i in range(n)])
    users = list(User.objects.filter(username__in=[u.username for u in users]).order_by("id"))
    # Their live chat threads, as their first visit to the page would have created them.
    from assistants_app.models import Thread

    Thread.objects.bulk_create([Thread(owner=u, is_chat=True) for u in users])
    chats = []
    for i, u in enumerate(users):
        s = SessionStore()
        s[SESSION_KEY] = str(u.pk)
        s[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
        s[HASH_SESSION_KEY] = u.get_session_auth_hash()
        s.create()
        chats.append(Chat(index=offset + i, session=s.session_key or "", csrf=secrets.token_hex(16)))
    return chats


async def bench_size(
    chats: list[Chat], port: int, server_pid: int, upstream_url: str, chunks: int, send_concurrency: int
) -> dict[str, Any]:
    n = len(chats)
    await asyncio.sleep(1.0)
    before = rss_kb(server_pid)
    t0 = time.monotonic()
    await open_sockets(port, chats)
    connect_s = time.monotonic() - t0
    await asyncio.sleep(3.0)  # let the server settle (each socket's connect-time lookups)
    after = rss_kb(server_pid)

    t0 = time.monotonic()
    sends = asyncio.Semaphore(send_concurrency)
    await asyncio.gather(*(run_chat(port, c, chunks, sends) for c in chats))
    chat_s = time.monotonic() - t0
    for c in chats:
        await c.ws.close()

    base_lat, base_seen = await upstream_alone(upstream_url, n)
    lat = [x for c in chats for x in c.latencies]
    started = [c for c in chats if not c.error]
    # Lost: deltas missing from a chat whose run was started (a refused send is an error, not a loss).
    lost = sum(max(0, chunks - len(set(c.seen))) for c in started)
    dup = sum(len(c.seen) - len(set(c.seen)) for c in chats)
    errors = [c.error for c in chats if c.error]
    return {
        "n": n,
        "connect_s": connect_s,
        "kb_per_idle": (after - before) / n,
        "p50": pct(lat, 50) * 1000,
        "p99": pct(lat, 99) * 1000,
        "base_p50": pct(base_lat, 50) * 1000,
        "base_p99": pct(base_lat, 99) * 1000,
        "deltas": len(lat),
        "expected": len(started) * chunks,
        "lost": lost,
        "dup": dup,
        "errors": errors,
        "chat_s": chat_s,
        "base_lost": n * chunks - base_seen,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10,100,1000")
    ap.add_argument("--chunks", type=int, default=20, help="deltas per reply")
    ap.add_argument("--delay", type=float, default=0.05, help="seconds between upstream chunks")
    ap.add_argument(
        "--run-concurrency",
        type=int,
        default=-1,
        help="RUN_CONCURRENCY of the server (default: the largest N; 0: the server's default)",
    )
    ap.add_argument(
        "--send-concurrency", type=int, default=1000, help="POST /chat/send/ requests in flight at once"
    )
    ap.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    ap.add_argument("--redis-url", default="", help="Redis event log + channel layer (default: in-process)")
    ap.add_argument("--serve-upstream", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_upstream:
        serve_upstream(args.chunks, args.delay)
        return
    sizes = [int(s) for s in args.sizes.split(",") if s]

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, max(soft, 4 * max(sizes) + 1024))
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    data = Path(tempfile.mkdtemp(prefix="bench-ws-"))
    up = subprocess.Popen(
        [
            sys.executable,
            __file__,
            "--serve-upstream",
            "--chunks",
            str(args.chunks),
            "--delay",
            str(args.delay),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert up.stdout is not None
    upstream_url = up.stdout.readline().strip()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        DATA_DIR=str(data),
        DATABASE_URL=args.database_url or f"sqlite:///{data}/db.sqlite3",
        DJANGO_DEBUG="0",
        MODEL_BACKEND="openai",
        OPENAI_BASE_URL=upstream_url,
        OPENAI_API_KEY="x",
        LOG_LEVEL="WARNING",
        RUN_POLL_SECONDS="0.2",
        DJANGO_SETTINGS_MODULE="chatsite.settings",
    )
    if args.redis_url:
        env["REDIS_URL"] = args.redis_url
    concurrency = max(sizes) if args.run_concurrency < 0 else args.run_concurrency
    if concurrency:
        env["RUN_CONCURRENCY"] = str(concurrency)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    call_command("bootstrap", verbosity=0)
    # Every user, session and chat thread exists before the server starts: the bench's own writes
    # must not compete with the server's for SQLite's lock.
    groups, offset = [], 0
    for n in sizes:
        groups.append(make_users(n, offset))
        offset += n
    from django.db import connections

    connections.close_all()
    port = free_port()
    log = open(data / "serve.log", "wb")
    server = subprocess.Popen(
        [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    failed = True
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/accounts/login/", timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        rows = []
        for n, chats in zip(sizes, groups, strict=True):
            row = asyncio.run(
                bench_size(chats, port, server.pid, upstream_url, args.chunks, args.send_concurrency)
            )
            rows.append(row)
            print(
                f"# N={n}: {row['chat_s']:.1f}s for the chats, {row['connect_s']:.1f}s to connect, errors={len(row['errors'])}",
                file=sys.stderr,
                flush=True,
            )
        store = "PostgreSQL" if args.database_url.startswith("postgres") else "SQLite"
        events = "Redis streams + channels_redis" if args.redis_url else "in-process event log"
        print(
            f"\n{args.chunks} deltas per reply, {args.delay * 1000:.0f} ms apart; server: daphne + embedded executor, "
            f"{store}, {events}, RUN_CONCURRENCY={concurrency or 'default'}, sends in flight <= {args.send_concurrency}; "
            f"{os.cpu_count()} CPUs\n"
        )
        print(
            "| N chats | delta latency p50 / p99 (ms) | upstream alone p50 / p99 (ms) | added p50 / p99 (ms) "
            "| deltas received / expected | lost | duplicated | RSS per idle socket (KB) | errors |"
        )
        print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in rows:
            print(
                f"| {r['n']} | {r['p50']:.1f} / {r['p99']:.1f} | {r['base_p50']:.1f} / {r['base_p99']:.1f} "
                f"| {r['p50'] - r['base_p50']:.1f} / {r['p99'] - r['base_p99']:.1f} | {r['deltas']} / {r['expected']} "
                f"| {r['lost']} | {r['dup']} | {r['kb_per_idle']:.1f} | {len(r['errors'])} |"
            )
        for r in rows:
            for e in sorted(set(r["errors"]))[:3]:
                print(f"\nN={r['n']} error: {e[:300]}")
        failed = any(r["errors"] for r in rows)
        if failed:
            problems = [
                ln for ln in (data / "serve.log").read_text().splitlines() if "Error" in ln or "error" in ln
            ]
            print("\nserver log, error lines (last 10 distinct):")
            for ln in list(dict.fromkeys(problems))[-10:]:
                print("   ", ln[:300])
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
        assert up.stdin is not None
        up.stdin.close()
        up.wait(timeout=10)
        if failed:
            print(f"kept {data} (serve.log, db.sqlite3) for inspection", file=sys.stderr)
        else:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
