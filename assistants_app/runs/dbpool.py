"""The threads on which run execution touches the database.

Engine and executor DB calls run here rather than on asgiref's single "thread-sensitive" thread,
so that concurrent runs don't queue behind each other. Each thread keeps its own connection; the
pool closes them all on shutdown (otherwise PostgreSQL sees leaked connections).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections

SIZE = 8
_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def _get_pool() -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=SIZE, thread_name_prefix="run-db")
        return _pool


def db(fn: Callable[..., Any]) -> Callable[..., Any]:
    return sync_to_async(fn, thread_sensitive=False, executor=_get_pool())


def shutdown() -> None:
    """Close every pool thread's connections, then the pool."""
    global _pool
    with _lock:
        pool, _pool = _pool, None
    if pool is None:
        return
    barrier = threading.Barrier(SIZE)

    def close() -> None:
        # The barrier makes each of the SIZE tasks land on a different thread.
        try:
            barrier.wait(5)
        except threading.BrokenBarrierError:
            pass
        connections.close_all()

    for f in [pool.submit(close) for _ in range(SIZE)]:
        f.result()
    pool.shutdown(wait=True)
