"""The run event stream: typed, ordered, durable for the life of a run, resumable by position.

Every reader (the chat page's websocket, the SSE API, a late or reconnecting client) reads the same
per-run log from a cursor. Two implementations:

* `MemoryEventLog`: one process (the embedded default). Events are appended to a per-run list;
  readers on the publisher's loop are woken directly, readers on other loops with one
  `call_soon_threadsafe` per loop. Nothing is dropped: a channel layer would drop deltas past its
  capacity (see docs), a list does not.
* `RedisEventLog`: several processes. One Redis Stream per run (`XADD` / `XREAD BLOCK`), which
  gives ordering, durability and catch-up from an entry id without a home-made broker.

A cursor is an opaque string: the position *after* the event it came with. `""` means "from the
start". Logs are kept for RUN_EVENTS_RETENTION_SECONDS after the run's terminal event. Each event is
serialized once (`RunEvent.json`), not once per reader, and readers take what has accumulated as one
batch (`read_batches`), so a busy server frames and writes several events at once.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator
from typing import Any, Protocol

import orjson
from django.conf import settings

from assistants_app.models.run import TERMINAL_STATUSES

TERMINAL_RUN_EVENTS = frozenset(f"thread.run.{status}" for status in TERMINAL_STATUSES)
# Where an SSE response for one request ends: a terminal event, or the run waiting for tool outputs.
STREAM_END_EVENTS = TERMINAL_RUN_EVENTS | {"thread.run.requires_action"}


def dumps(data: Any) -> bytes:
    """Compact JSON. orjson, with the standard library for what it refuses (integers past 64 bits)."""
    try:
        return orjson.dumps(data)
    except TypeError:
        return json.dumps(data, separators=(",", ":")).encode()


class RunEvent:
    """One event of a run's log. `json()` is serialized once, however many readers frame it: the
    in-process log hands the same object to every reader, and a Redis reader keeps the bytes it read
    (then `data` is parsed only if someone looks at it)."""

    __slots__ = ("_data", "_json", "cursor", "event")

    def __init__(
        self, cursor: str, event: str, data: dict[str, Any] | None = None, *, raw: bytes | None = None
    ) -> None:
        self.cursor = cursor
        self.event = event
        self._data = data
        self._json = raw

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            self._data = orjson.loads(self._json) if self._json is not None else {}
        return self._data

    def json(self) -> bytes:
        if self._json is None:
            self._json = dumps(self._data)
        return self._json

    def __repr__(self) -> str:
        return f"RunEvent({self.cursor!r}, {self.event!r})"


class EventLog(Protocol):
    # True when apublish completes without waiting (in-process): the emitter then publishes inline.
    instant: bool

    def publish(self, run_id: str, event: str, data: dict[str, Any]) -> str: ...

    async def apublish(self, run_id: str, items: list[tuple[str, dict[str, Any]]]) -> str: ...

    def end_cursor(self, run_id: str) -> str: ...

    def read(
        self, run_id: str, after: str = "", *, idle_timeout: float | None = None
    ) -> AsyncIterator[RunEvent]:
        """Yield events after `after` as they come; stops after `idle_timeout` seconds without one."""
        ...

    def read_batches(
        self, run_id: str, after: str = "", *, idle_timeout: float | None = None
    ) -> AsyncIterator[list[RunEvent]]:
        """`read`, but everything available at once as one list (never empty)."""
        ...


# --------------------------------------------------------------------------------------------------
class _MemoryRun:
    __slots__ = ("closed_at", "events", "lock", "waiters")

    def __init__(self) -> None:
        self.events: list[RunEvent] = []
        self.lock = threading.Lock()
        self.waiters: list[_Waiter] = []
        self.closed_at: float | None = None


class _Waiter:
    """A reader waiting for its run's next events, on its own event loop.

    The idle timeout is one timer per idle period, not one per wake-up: the timer fires at the
    deadline, and if events came meanwhile it re-arms itself for the new deadline."""

    __slots__ = ("deadline", "fut", "loop", "timer")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.fut: asyncio.Future[bool] | None = None
        self.deadline = 0.0
        self.timer: asyncio.TimerHandle | None = None

    def wake(self) -> None:
        fut = self.fut
        if fut is not None and not fut.done():
            fut.set_result(True)

    def on_timer(self) -> None:
        self.timer = None
        fut = self.fut
        if fut is None or fut.done():
            return
        if self.loop.time() >= self.deadline:
            fut.set_result(False)
        else:
            self.timer = self.loop.call_at(self.deadline, self.on_timer)


def _wake_all(waiters: list[_Waiter]) -> None:
    for w in waiters:
        w.wake()


def _wake(waiters: list[_Waiter]) -> None:
    """Wake readers: directly on this thread's loop, with one thread-safe call per other loop."""
    try:
        here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        here = None
    others: dict[asyncio.AbstractEventLoop, list[_Waiter]] = {}
    for w in waiters:
        if w.loop is here:
            w.wake()
        else:
            others.setdefault(w.loop, []).append(w)
    for loop, group in others.items():
        try:
            loop.call_soon_threadsafe(_wake_all, group)
        except RuntimeError:  # the reader's loop is gone
            pass


class _Reader:
    """`read`, one event at a time, from the log's own `read_batches`."""

    def read_batches(
        self, run_id: str, after: str = "", *, idle_timeout: float | None = None
    ) -> AsyncIterator[list[RunEvent]]:
        raise NotImplementedError

    async def read(
        self, run_id: str, after: str = "", *, idle_timeout: float | None = None
    ) -> AsyncIterator[RunEvent]:
        async for batch in self.read_batches(run_id, after, idle_timeout=idle_timeout):
            for ev in batch:
                yield ev


class MemoryEventLog(_Reader):
    """In-process: one list of events per run. A reader on the publisher's own event loop (the
    embedded executor runs on daphne's loop) is woken directly; readers on other loops get one
    thread-safe call per loop, however many of them wait there."""

    instant = True

    def __init__(self, retention: float | None = None) -> None:
        self._runs: dict[str, _MemoryRun] = {}
        self._lock = threading.Lock()
        self._retention = retention

    @property
    def retention(self) -> float:
        return self._retention if self._retention is not None else settings.RUN_EVENTS_RETENTION_SECONDS

    def _get(self, run_id: str) -> _MemoryRun:
        log = self._runs.get(run_id)
        if log is None:
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
            events = log.events
            for event, data in items:
                events.append(RunEvent(str(len(events) + 1), event, data))
                if event in TERMINAL_RUN_EVENTS:
                    log.closed_at = time.monotonic()
            waiters, log.waiters = log.waiters, []
            cursor = str(len(events))
        if waiters:
            _wake(waiters)
        if log.closed_at is not None:
            self._sweep()
        return cursor

    def publish(self, run_id: str, event: str, data: dict[str, Any]) -> str:
        return self._append(run_id, [(event, data)])

    def publish_many(self, run_id: str, items: list[tuple[str, dict[str, Any]]]) -> str:
        return self._append(run_id, items)

    async def apublish(self, run_id: str, items: list[tuple[str, dict[str, Any]]]) -> str:
        return self._append(run_id, items)

    def end_cursor(self, run_id: str) -> str:
        log = self._get(run_id)
        with log.lock:
            return str(len(log.events))

    async def read_batches(
        self, run_id: str, after: str = "", *, idle_timeout: float | None = None
    ) -> AsyncIterator[list[RunEvent]]:
        log = self._get(run_id)
        pos = int(after or 0)
        loop = asyncio.get_running_loop()
        waiter = _Waiter(loop)
        if idle_timeout is not None:
            waiter.deadline = loop.time() + idle_timeout
        try:
            while True:
                with log.lock:
                    batch = log.events[pos:]
                    if not batch:
                        waiter.fut = loop.create_future()
                        log.waiters.append(waiter)
                if batch:
                    pos += len(batch)
                    if idle_timeout is not None:
                        waiter.deadline = loop.time() + idle_timeout
                    yield batch
                    continue
                if idle_timeout is not None and waiter.timer is None:
                    waiter.timer = loop.call_at(waiter.deadline, waiter.on_timer)
                assert waiter.fut is not None
                woken = await waiter.fut
                waiter.fut = None
                if not woken:
                    return
        finally:
            if waiter.timer is not None:
                waiter.timer.cancel()
            with log.lock:
                if waiter in log.waiters:
                    log.waiters.remove(waiter)


# --------------------------------------------------------------------------------------------------
class RedisEventLog(_Reader):
    """One Redis Stream per run. Entry ids are the cursors."""

    instant = False

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
        return {"e": event, "d": dumps(data)}

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

    async def read_batches(
        self, run_id: str, after: str = "", *, idle_timeout: float | None = None
    ) -> AsyncIterator[list[RunEvent]]:
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
            # The JSON stays as read: an SSE reader frames these bytes as they are (RunEvent.json).
            batch = [
                RunEvent(entry_id.decode(), fields[b"e"].decode(), raw=fields[b"d"])
                for entry_id, fields in reply[0][1]
            ]
            if not batch:
                continue
            pos = batch[-1].cursor
            if deadline is not None:
                deadline = time.monotonic() + (idle_timeout or 0)
            yield batch


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
