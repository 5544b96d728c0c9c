"""The one way async code touches the database: `await db(fn)(*args)`.

Used by the run engine and executor, the hosted tools, runs/stream.follow and the chat page's
websocket consumer. Calls run on pools of threads of their own, never on asgiref's single
"thread-sensitive" thread: that one thread is shared by every sync view, so concurrent runs or a
thousand sockets connecting at once would queue behind each other (and behind every request).

Two pools, so that readers can never starve the engine of database threads (and so raise
time-to-first-token) or the other way round:

- "runs": the engine, the executor and the hosted tools;
- "readers": the websocket consumers and stream.follow's fallback reads (SSE responses too).

Each thread keeps its own connection; `shutdown` closes them (otherwise PostgreSQL sees leaked
connections) and a later call starts the pool again. With PostgreSQL's connection pool
(DB_POOL_SIZE) a call hands its connection back when it returns instead, as a request does at its
end: otherwise these threads would hold up to 2 x SIZE of the pool's connections for good.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from asgiref.sync import sync_to_async
from django.db import close_old_connections, connections

Pool = Literal["runs", "readers"]
SIZE = 8
_pools: dict[str, ThreadPoolExecutor] = {}
_lock = threading.Lock()


def _get_pool(name: Pool) -> ThreadPoolExecutor:
    with _lock:
        pool = _pools.get(name)
        if pool is None:
            pool = _pools[name] = ThreadPoolExecutor(max_workers=SIZE, thread_name_prefix=f"db-{name}")
        return pool


def pooled() -> bool:
    """True when the default database hands out connections from Django's psycopg pool."""
    return bool(connections["default"].settings_dict.get("OPTIONS", {}).get("pool"))


def _returning[**P, R](fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def call(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        finally:
            # CONN_MAX_AGE is 0 with a pool, so this puts the connection back (as request_finished does).
            close_old_connections()

    return call


def db[**P, R](fn: Callable[P, R], *, pool: Pool = "runs") -> Callable[P, Coroutine[Any, Any, R]]:
    """`fn` as a coroutine function that runs it on one of `pool`'s threads."""
    return sync_to_async(_returning(fn) if pooled() else fn, thread_sensitive=False, executor=_get_pool(pool))


def shutdown(name: Pool | None = None) -> None:
    """Close every thread's connections in pool `name` (all pools when None), then the pool."""
    with _lock:
        names = [name] if name is not None else list(_pools)
        closing = [p for n in names if (p := _pools.pop(n, None)) is not None]
    for pool in closing:
        barrier = threading.Barrier(SIZE)

        def close(barrier: threading.Barrier = barrier) -> None:
            # The barrier makes each of the SIZE tasks land on a different thread.
            try:
                barrier.wait(5)
            except threading.BrokenBarrierError:
                pass
            connections.close_all()

        for f in [pool.submit(close) for _ in range(SIZE)]:
            f.result()
        pool.shutdown(wait=True)
