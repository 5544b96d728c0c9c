"""Python sessions per thread: one sandboxed interpreter per thread, kept alive between executions.

Where they live: in the process that executes runs (the embedded executor's thread in the web
process, or a `run_worker`), one SessionPool per event loop (the executor's). A pool is keyed by
thread id, and a thread's session is only ever used for that thread: the owner is implied by the
thread, so two threads, let alone two users, never share one. Like `/mnt/data`, a session lives on
the machine and in the process that ran the thread's last execution; a run of the same thread
claimed by another worker starts a fresh one (and the tool tells the model).

A session ends:
- after CODE_INTERPRETER_SESSION_IDLE_SECONDS without an execution (the reaper);
- when the pool holds more than CODE_INTERPRETER_MAX_SESSIONS: the least recently used idle
  sessions go first. A session is never evicted while it executes; when all are busy, one more is
  started anyway (executions in flight are bounded by RUN_CONCURRENCY) and the surplus ends as soon
  as it is idle;
- when its thread is deleted: in this process at once (`end_thread`, called by the thread-delete
  hook in cleanup.py, kills it with a cgroupfs write from the deleting thread); in other
  processes (a run_worker) when the reaper next checks, every CHECK_SECONDS, which of its threads
  still exist (one query). That needs no message bus, works without Redis, and an orphan holds
  nothing but its frozen memory for at most that long;
- when an execution was runaway or crashed (session.py), and when the executor shuts down
  (`shutdown()`, from the executor's shutdown via tools.hosted). If the process dies instead,
  --die-with-parent takes the sandbox with it, and the next start removes its cgroup.
Why the last session of a thread ended is remembered (bounded) so that the next execution's
result can say so (`ExecutionResult.state_lost`).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path

from . import config
from .bwrap import SandboxUnavailable
from .config import Limits
from .outcome import ExecutionResult
from .session import Session, process_limits

log = logging.getLogger(__name__)
CHECK_SECONDS = 60.0  # how often a pool asks which of its threads still exist
LOST_REMEMBERED = 10_000
Exists = Callable[[list[str]], Awaitable[set[str]]]


def duration(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g} {unit}"
    return f"{seconds:g} s"


class SessionPool:
    def __init__(
        self,
        *,
        max_sessions: int | None = None,
        idle_seconds: float | None = None,
        exists: Exists | None = None,
        check_seconds: float = CHECK_SECONDS,
    ) -> None:
        self.max_sessions = max_sessions if max_sessions is not None else config.max_sessions()
        self.idle_seconds = idle_seconds if idle_seconds is not None else config.session_idle_seconds()
        self.check_seconds = check_seconds
        self._exists = exists
        self._sessions: OrderedDict[str, Session] = OrderedDict()  # least recently used first
        self._lost: OrderedDict[str, str] = OrderedDict()  # thread -> why its last session ended
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}  # executions holding or waiting for a thread's lock
        self._closing: set[asyncio.Task[None]] = set()
        self._reaper: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        self.closed = False
        with _pools_lock:
            _pools.add(self)

    def __len__(self) -> int:
        return len(self._sessions)

    def __contains__(self, key: str) -> bool:
        return key in self._sessions

    async def execute(
        self, key: str, code: str, workdir: Path, *, limits: Limits | None = None
    ) -> ExecutionResult:
        """Run `code` in `key`'s session (started if there is none). Raises SandboxUnavailable."""
        limits = limits or Limits()
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                return await self._execute(key, code, Path(workdir), limits)
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key], self._locks[key]
            self._enforce_cap()
            self._wake.set()

    async def _execute(self, key: str, code: str, workdir: Path, limits: Limits) -> ExecutionResult:
        from .sandbox import _warn_once

        _warn_once()
        session = self._sessions.get(key)
        if session is not None:
            if not session.alive:
                await self._end(key, session.ended or "the Python process ended between executions")
                session = None
            elif session.workdir != workdir or session.process_limits != process_limits(limits):
                await self._end(key, "the sandbox's settings changed")
                session = None
        lost = None
        if session is None:
            if self.closed:
                raise SandboxUnavailable("the server is shutting down")
            lost = self._lost.pop(key, None)
            try:
                session = await Session.start(workdir, limits, persistent=True)
            except BaseException:
                if lost is not None:
                    self._remember(key, lost)  # still to be said, by the execution that gets one
                raise
            self._sessions[key] = session
            if self._reaper is None or self._reaper.done():
                self._reaper = asyncio.ensure_future(self._reap())
        self._sessions.move_to_end(key)
        try:
            result = await session.execute(code, limits)
        finally:
            if not session.alive and self._sessions.get(key) is session:
                await self._end(key, session.ended or "the Python process ended")
        result.state_lost = lost
        return result

    # --------------------------------------------------------------------------- ending

    def _remember(self, key: str, reason: str) -> None:
        self._lost.pop(key, None)
        self._lost[key] = reason
        while len(self._lost) > LOST_REMEMBERED:
            self._lost.popitem(last=False)

    async def _end(self, key: str, reason: str) -> None:
        session = self._sessions.pop(key, None)
        if session is not None:
            self._remember(key, session.ended or reason)
            await session.close(reason)

    def _end_soon(self, key: str, reason: str) -> None:
        session = self._sessions.pop(key, None)
        if session is None:
            return
        session.kill(reason)
        self._remember(key, session.ended or reason)
        task = asyncio.ensure_future(session.close(reason))
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    async def discard(self, key: str) -> None:
        """End `key`'s idle session and wait until it is gone."""
        await self._end(key, "the session was discarded")

    def end(self, key: str, reason: str) -> None:
        """End `key`'s session now, even mid-execution (on the pool's loop)."""
        session = self._sessions.get(key)
        if session is None:
            return
        if self._users.get(key):
            session.kill(reason)  # the execution sees it die and ends the session itself
        else:
            self._end_soon(key, reason)

    def end_threadsafe(self, key: str, reason: str) -> None:
        session = self._sessions.get(key)
        if session is None or self._loop.is_closed():
            return
        session.hard_kill()
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            self._loop.call_soon_threadsafe(self.end, key, reason)

    def _enforce_cap(self) -> None:
        reason = (
            "the session was ended to make room for other threads' sessions "
            f"(at most {self.max_sessions} per worker)"
        )
        while len(self._sessions) > self.max_sessions:
            idle = next((k for k in self._sessions if not self._users.get(k)), None)
            if idle is None:
                return  # all busy: the surplus goes when they finish
            self._end_soon(idle, reason)

    async def _reap(self) -> None:
        """Ends idle and dead sessions, and those of deleted threads; returns when there are none."""
        next_check = time.monotonic() + self.check_seconds
        while self._sessions and not self.closed:
            now = time.monotonic()
            idle = [(k, s) for k, s in self._sessions.items() if not self._users.get(k)]
            for key, session in idle:
                if not session.alive:
                    self._end_soon(key, session.ended or "the Python process ended between executions")
                elif now - session.last_used >= self.idle_seconds:
                    self._end_soon(key, f"the session was idle for more than {duration(self.idle_seconds)}")
            if self._exists is not None and now >= next_check:
                next_check = now + self.check_seconds
                await self._drop_deleted()
            deadlines = [s.last_used + self.idle_seconds for k, s in idle if k in self._sessions]
            wait = min([*deadlines, next_check]) - time.monotonic()
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.01, wait))

    async def _drop_deleted(self) -> None:
        assert self._exists is not None
        keys = list(self._sessions)
        try:
            existing = await self._exists(keys)
        except Exception:
            log.warning("could not check which code-interpreter threads still exist", exc_info=True)
            return
        for key in keys:
            if key not in existing:
                self.end(key, "the thread was deleted")

    async def aclose(self) -> None:
        """End every session (the executor is shutting down)."""
        self.closed = True
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for key in list(self._sessions):
            self._end_soon(key, "the server shut down")
        await asyncio.gather(*self._closing, return_exceptions=True)
        with _pools_lock:
            _pools.discard(self)


# ------------------------------------------------------------------------------ per process

_pools: weakref.WeakSet[SessionPool] = weakref.WeakSet()
_pools_lock = threading.Lock()
_default: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SessionPool] = weakref.WeakKeyDictionary()


def default_pool(*, exists: Exists | None = None) -> SessionPool:
    """The running event loop's pool (created with the settings on first use)."""
    loop = asyncio.get_running_loop()
    pool = _default.get(loop)
    if pool is None or pool.closed:
        pool = _default[loop] = SessionPool(exists=exists)
    return pool


async def shutdown() -> None:
    """Close the running loop's pool, if it has one."""
    pool = _default.pop(asyncio.get_running_loop(), None)
    if pool is not None:
        await pool.aclose()


def end_thread(thread_id: str) -> None:
    """The thread was deleted: end its session in every pool of this process (from any thread)."""
    with _pools_lock:
        pools = list(_pools)
    for pool in pools:
        pool.end_threadsafe(thread_id, "the thread was deleted")


@atexit.register
def _kill_all() -> None:
    # --die-with-parent ends the sandboxes with the thread that started them; this covers the rest.
    with _pools_lock:
        pools = list(_pools)
    for pool in pools:
        for session in list(pool._sessions.values()):
            with contextlib.suppress(Exception):
                session.hard_kill()
