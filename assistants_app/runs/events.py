"""The run event stream: typed, ordered, durable for the life of a run, resumable by position.

Every reader (the chat page's websocket, the SSE API, a late or reconnecting client) reads the same
per-run log from a cursor. Two implementations:

* `MemoryEventLog`: one process (the embedded default). Events are appended to a per-run list;
  readers in any thread or event loop are woken with `call_soon_threadsafe`. Nothing is dropped:
  a channel layer would drop deltas past its capacity (see docs), a list does not.
* `RedisEventLog`: several processes. One Redis Stream per run (`XADD` / `XREAD BLOCK`), which
  gives ordering, durability and catch-up from an entry id without a home-made broker.

A cursor is an opaque string: the position *after* the event it came with. `""` means "from the
start". Logs are kept for RUN_EVENTS_RETENTION_SECONDS after the run's terminal event.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from django.conf import settings

from assistants_app.models.run import TERMINAL_STATUSES

TERMINAL_RUN_EVENTS = frozenset(f"thread.run.{status}" for status in TERMINAL_STATUSES)
# Where an SSE response for one request ends: a terminal event, or the run waiting for tool outputs.
STREAM_END_EVENTS = TERMINAL_RUN_EVENTS | {"thread.run.requires_action"}


@dataclass(frozen=True, slots=True)
class RunEvent:
    cursor: str
    event: str
    data: dict[str, Any]


class EventLog(Protocol):
    def publish(self, run_id: str, event: str, data: dict[str, Any]) -> str: ...

    async def apublish(self, run_id: str, items: list[tuple[str, dict[str, Any]]]) -> str: ...

    def end_cursor(self, run_id: str) -> str: ...

    def read(
        self, run_id: str, after: str = "", *, idle_timeout: float | None = None
    ) -> AsyncIterator[RunEvent]:
        """Yield events after `after` as they come; stops after `idle_timeout` seconds without one."""
        ...


# --------------------------------------------------------------------------------------------------
class _MemoryRun:
    __slots__ = ("closed_at", "events", "lock", "waiters")

    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self.closed_at: float | None = None


def _wake(fut: asyncio.Future[None]) -> None:
    if not fut.done():
        fut.set_result(None)


class MemoryEventLog:
    def __init__(self, retention: float | None = None) -> None:
        self._runs: dict[str, _MemoryRun] = {}
        self._lock = threading.Lock()
        self._retention = retention

    @property
    def retention(self) -> float:
        return self._retention if self._retention is not None else settings.RUN_EVENTS_RETENTION_SECONDS

    def _get(self, run_id: str) -> _MemoryRun:
        with self._lock:
            log = self._runs.get(run_id)
            if log is None:
                log = self._runs[run_id] = _MemoryRun()
            return log

    def _sweep(self) -> None:
        cutoff = time.monotonic() - self.retention
        with self._lock:
            stale = [k for k, v in self._runs.items() if v.closed_at is not None and v.closed_at < cutoff]
            for k in stale:
                del self._runs[k]

    def _append(self, run_id: str, items: list[tuple[str, dict[str, Any]]]) -> str:
        log = self._get(run_id)
        with log.lock:
            log.events.extend(items)
            if any(ev in TERMINAL_RUN_EVENTS for ev, _ in items):
                log.closed_at = time.monotonic()
            waiters, log.waiters = log.waiters, []
            cursor = str(len(log.events))
        for loop, fut in waiters:
            try:
                loop.call_soon_threadsafe(_wake, fut)
            except RuntimeError:  # the reader's loop is gone
                pass
        if log.closed_at is not None:
            self._sweep()
        return cursor

    def publish(self, run_id: str, event: str, data: dict[str, Any]) -> str:
        return self._append(run_id, [(event, data)])

    async def apublish(self, run_id: str, items: list[tuple[str, dict[str, Any]]]) -> str:
        return self._append(run_id, items)

    def end_cursor(self, run_id: str) -> str:
        log = self._get(run_id)
        with log.lock:
            return str(len(log.events))

    async def read(
        self, run_id: str, after: str = "", *, idle_timeout: float | None = None
    ) -> AsyncIterator[RunEvent]:
        log = self._get(run_id)
        pos = int(after or 0)
        loop = asyncio.get_running_loop()
        while True:
            fut: asyncio.Future[None] | None = None
            with log.lock:
                batch = log.events[pos:]
                if not batch:
                    fut = loop.create_future()
                    log.waiters.append((loop, fut))
            if fut is not None:
                try:
                    await asyncio.wait_for(fut, idle_timeout)
                except TimeoutError:
                    with log.lock:
                        if (loop, fut) in log.waiters:
                            log.waiters.remove((loop, fut))
                    return
                continue
            for event, data in batch:
                pos += 1
                yield RunEvent(str(pos), event, data)


# --------------------------------------------------------------------------------------------------
class RedisEventLog:
    """One Redis Stream per run. Entry ids are the cursors."""

    def __init__(self, url: str) -> None:
        import redis
        import redis.asyncio as aredis

        self._url = url
        self._sync: Any = redis.Redis.from_url(url)
        self._aredis = aredis
        self._async_clients: dict[int, Any] = {}

    def _async(self) -> Any:
        # One client per event loop: redis.asyncio connections are bound to the loop that made them.
        loop = asyncio.get_running_loop()
        client = self._async_clients.get(id(loop))
        if client is None:
            # Every blocked XREAD holds a connection: size the pool for many concurrent readers
            # (redis-py's default of 100 would refuse the 101st chat socket), and let a blocking
            # read outlast the socket timeout.
            client = self._aredis.Redis.from_url(
                self._url, max_connections=settings.REDIS_MAX_CONNECTIONS, socket_timeout=None
            )
            self._async_clients[id(loop)] = client
        return client

    @staticmethod
    def _key(run_id: str) -> str:
        return f"assistants:run-events:{run_id}"

    @staticmethod
    def _encode(event: str, data: dict[str, Any]) -> dict[Any, Any]:
        return {"e": event, "d": json.dumps(data, separators=(",", ":"))}

    def publish(self, run_id: str, event: str, data: dict[str, Any]) -> str:
        key = self._key(run_id)
        pipe = self._sync.pipeline(transaction=False)
        pipe.xadd(key, self._encode(event, data))
        pipe.expire(key, settings.RUN_EVENTS_RETENTION_SECONDS + settings.RUN_EXPIRES_SECONDS)
        entry_id, _ = pipe.execute()
        return str(entry_id.decode())

    async def apublish(self, run_id: str, items: list[tuple[str, dict[str, Any]]]) -> str:
        key = self._key(run_id)
        pipe = self._async().pipeline(transaction=False)
        for event, data in items:
            pipe.xadd(key, self._encode(event, data))
        pipe.expire(key, settings.RUN_EVENTS_RETENTION_SECONDS + settings.RUN_EXPIRES_SECONDS)
        results = await pipe.execute()
        return str(results[-2].decode())

    def end_cursor(self, run_id: str) -> str:
        entries = self._sync.xrevrange(self._key(run_id), count=1)
        return entries[0][0].decode() if entries else ""

    async def read(
        self, run_id: str, after: str = "", *, idle_timeout: float | None = None
    ) -> AsyncIterator[RunEvent]:
        key = self._key(run_id)
        client = self._async()
        pos = after or "0-0"
        deadline = None if idle_timeout is None else time.monotonic() + idle_timeout
        while True:
            block_ms = 5000
            if deadline is not None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return
                block_ms = max(1, min(block_ms, int(remaining * 1000)))
            reply = await client.xread({key: pos}, count=1000, block=block_ms)
            if not reply:
                continue
            for entry_id, fields in reply[0][1]:
                pos = entry_id.decode()
                if deadline is not None:
                    deadline = time.monotonic() + (idle_timeout or 0)
                yield RunEvent(pos, fields[b"e"].decode(), json.loads(fields[b"d"]))


# --------------------------------------------------------------------------------------------------
_log: EventLog | None = None
_log_lock = threading.Lock()


def get_event_log() -> EventLog:
    global _log
    if _log is None:
        with _log_lock:
            if _log is None:
                _log = RedisEventLog(settings.REDIS_URL) if settings.REDIS_URL else MemoryEventLog()
    return _log


def reset_event_log() -> None:
    """For tests that switch settings."""
    global _log
    with _log_lock:
        _log = None
