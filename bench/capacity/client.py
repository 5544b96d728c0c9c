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
import json
import re
import secrets
import sys
import time
from dataclasses import asdict
from typing import Any

from .wire import FOLLOW, WS, WS_FINAL, WS_FINAL_BODY, WS_TOKEN, Http, Result, _short, _tokens, read_sse


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
            final: list[bytes] | None = None
            while not r.status:
                for fr in await asyncio.wait_for(ws.frames(), job["timeout"]):
                    # The growing block is re-rendered ~10 times a second (streaming Markdown), so
                    # a token is "seen" (TTFT, last token) the first time it shows up in any
                    # fragment, and "received" counts the reply's final render: a token lost or
                    # doubled there is what the user is left with.
                    found = WS_TOKEN.findall(fr)
                    if found:
                        _tokens(r, found, t0)
                        r.received -= len(found)
                        for part in fr.split(WS_FINAL)[1:]:
                            body = WS_FINAL_BODY.search(part)
                            if body and (tokens := WS_TOKEN.findall(body.group(1))):
                                final = tokens
                    # The run is over when the run controls are redrawn without the progress marker.
                    last = fr.rfind(b'id="run-controls"')
                    if last >= 0 and b"data-run-active" not in fr[last : fr.find(b"</div>", last)]:
                        r.status = "ended"
            r.received = len(final) if final is not None else len(r.seen)
            if final is not None:
                r.seen = {int(x) for x in final}
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
