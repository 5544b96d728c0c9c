"""How runs get a worker.

The run row is the task: a queued run is claimed by a conditional UPDATE (state.claim), so any
number of executors — a thread inside the web process (embedded mode) or `manage.py run_worker`
processes on other machines (external mode, PostgreSQL + Redis) — share the queue and exactly one
executes each run. Which queued runs an executor tries first is fairness.py's turn order (fair across
owners, not first come). A claimed run carries a lease that its executor renews; when a worker dies the
lease runs out and any executor's reaper ends or requeues the run (see recovery.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import close_old_connections
from django.utils import timezone

from assistants_app import asyncdb
from assistants_app.asyncdb import db
from assistants_app.backends.client import close_clients
from assistants_app.models import Run
from assistants_app.tools import hosted

from . import fairness, nudges, recovery, state
from .engine import Execution

log = logging.getLogger(__name__)

# Owners remembered for fair claiming; beyond this, the least recently served are forgotten.
LAST_SERVED_OWNERS = 10_000


def make_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Executor:
    def __init__(self, worker_id: str | None = None, concurrency: int | None = None) -> None:
        self.worker_id = worker_id or make_worker_id()
        self.concurrency = concurrency or settings.RUN_CONCURRENCY
        self.running: dict[str, tuple[asyncio.Task[None], asyncio.Event]] = {}
        self.executions: dict[str, Execution] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        # owner id -> when this executor last claimed one of their runs, least recent first.
        self._last_served: dict[int, float] = {}
        self._recovered_at = time.monotonic()  # run_forever recovers at start-up
        self._renewed_at = 0.0
        # Whether the last look at the queue may have left runs behind for want of a free slot: only
        # then does a run's end look again at once (else a nudge or the next poll does).
        self._backlog = True

    # Thread-safe entry points (called from request threads, signal handlers, pub/sub listeners).
    def wake(self) -> None:
        if self._loop and self._wake:
            self._loop.call_soon_threadsafe(self._wake.set)

    def request_cancel(self, run_id: str) -> None:
        if self._loop:
            self._loop.call_soon_threadsafe(self._cancel_local, run_id)

    def stop(self) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)

    def _cancel_local(self, run_id: str) -> None:
        entry = self.running.get(run_id)
        if entry:
            entry[1].set()

    # ---------------------------------------------------------------------------------------------
    async def run_forever(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._stop = asyncio.Event()
        nudges.register(self)
        listener = asyncio.ensure_future(nudges.listen(self))
        heartbeat = asyncio.ensure_future(self._heartbeat())
        ingest = asyncio.ensure_future(self._ingest_files())
        log.info("run executor %s started (concurrency %d)", self.worker_id, self.concurrency)
        try:
            # Heavy first-use work (tool modules with numpy/pypdf, the tokenizer's ranks) happens
            # here, off the event loop, before any run is claimed: done lazily inside a run it
            # would stall the loop, and with it the lease heartbeat, for seconds.
            await db(_warm_up)()
            try:
                await db(recovery.recover)()
            except Exception:
                log.exception("start-up recovery failed; the heartbeat will retry it")
            while not self._stop.is_set():
                try:
                    await self._claim_some()
                except Exception:
                    # A transient database error ("database is locked", a dropped connection) must
                    # not end the executor: the next poll tries again.
                    log.exception("claiming queued runs failed; retrying")
                try:
                    await asyncio.wait_for(self._wake.wait(), settings.RUN_POLL_SECONDS)
                except TimeoutError:
                    pass
                self._wake.clear()
        finally:
            nudges.unregister(self)
            listener.cancel()
            heartbeat.cancel()
            ingest.cancel()
            await self._shutdown()
            await hosted.shutdown()  # after the runs: ends code-interpreter sessions
            await close_clients()  # the upstream connections of this loop's runs

    async def _claim_some(self) -> None:
        free = self.concurrency - len(self.running)
        if free <= 0:
            self._backlog = True
            return
        limit = free * 2
        # The look and the first claim share one trip to a thread: the first run starts a hop sooner.
        # The others are claimed one trip each, so none of them delays the start of the one before.
        candidates, first, run = await db(_look_and_claim)(limit, dict(self._last_served), self.worker_id)
        self._backlog = len(candidates) >= limit  # maybe more queued than were listed
        if run is not None:
            self._start(run, candidates[first][1])
        for run_id, owner in candidates[first + 1 :]:
            if len(self.running) >= self.concurrency:
                self._backlog = True  # the rest of the candidates still wait
                break
            run = await db(state.claim)(run_id, self.worker_id)
            if run is None:
                continue  # another executor won it
            self._start(run, owner)

    def _start(self, run: Run, owner: int) -> None:
        self._served(owner)
        cancel = asyncio.Event()
        task = asyncio.ensure_future(self._execute(run, cancel))
        self.running[run.id] = (task, cancel)

    def _served(self, owner: int) -> None:
        """Remember when this executor last claimed a run of `owner` (fairness's tie-break)."""
        self._last_served.pop(owner, None)
        self._last_served[owner] = time.monotonic()
        while len(self._last_served) > LAST_SERVED_OWNERS:
            self._last_served.pop(next(iter(self._last_served)))  # the least recently served

    async def _execute(self, run: Run, cancel: asyncio.Event) -> None:
        try:
            execution = self.executions[run.id] = Execution(run, cancel=cancel)
            await execution.execute()
        finally:
            self.running.pop(run.id, None)
            self.executions.pop(run.id, None)
            if self._wake and self._backlog:
                self._wake.set()  # a slot is free for a run that is waiting
            await db(close_old_connections)()

    async def _ingest_files(self) -> None:
        """File-search ingestion rides on the same workers: claim pending files, one at a time."""
        from assistants_app.tools.file_search.ingest import claim_and_ingest_pending

        while True:
            try:
                done = await db(claim_and_ingest_pending)(self.worker_id, 1)
            except Exception:
                log.exception("file ingestion failed")
                done = 0
            if not done:
                await asyncio.sleep(settings.RUN_POLL_SECONDS)

    async def _heartbeat(self) -> None:
        interval = max(0.2, min(settings.RUN_LEASE_SECONDS / 3, settings.RUN_POLL_SECONDS))
        while True:
            await asyncio.sleep(interval)
            try:
                await self._beat()
            except Exception:
                log.exception("executor heartbeat failed")

    async def _beat(self) -> None:
        ids = list(self.running)
        # Recovery (other workers' lost leases, expired runs) needs to run only a few times per
        # lease period, not on every beat: that query was most of an idle server's CPU.
        now = time.monotonic()
        recover = now - self._recovered_at >= settings.RUN_LEASE_SECONDS / 3
        if not ids and not recover:
            return
        # A claim leases a run for RUN_LEASE_SECONDS: renewing every third of that keeps the lease
        # with room to spare. Every beat still asks which runs are ours and which are being
        # cancelled (one SELECT): a cancel from a process without Redis is seen within a beat.
        renew = bool(ids) and now - self._renewed_at >= settings.RUN_LEASE_SECONDS / 3
        held, cancelling = await db(_beat_sync)(self.worker_id, ids, renew, recover)
        if renew:
            self._renewed_at = now
        if recover:
            self._recovered_at = time.monotonic()
        for run_id in ids:
            if run_id not in self.running:
                continue  # finished while we were asking
            if run_id not in held:
                # Reaped after we stalled past the lease: stop at once and write nothing more.
                execution = self.executions.get(run_id)
                if execution is not None and await db(_lease_lost)(run_id, self.worker_id):
                    execution.lost = True
                    self._cancel_local(run_id)
            elif run_id in cancelling:
                self._cancel_local(run_id)

    async def _shutdown(self) -> None:
        """Stop in-flight runs; release their leases so that a restart recovers them at once."""
        ids = list(self.running)
        for task, _ in self.running.values():
            task.cancel()
        if ids:
            await asyncio.gather(*(t for t, _ in self.running.values()), return_exceptions=True)
            await db(_release)(self.worker_id, ids)


def _look_and_claim(
    limit: int, last_served: dict[int, float], worker_id: str
) -> tuple[list[tuple[str, int]], int, Run | None]:
    """The queued runs in fair order (fairness.queued_in_turn), and the first of them this worker
    won: its index (len(candidates) if none) and the claimed run."""
    candidates = fairness.queued_in_turn(limit, last_served)
    for i, (run_id, _) in enumerate(candidates):
        run = state.claim(run_id, worker_id)
        if run is not None:
            return candidates, i, run
    return candidates, len(candidates), None


def _warm_up() -> None:
    from assistants_app.tools import hosted
    from assistants_app.tools.file_search import ingest  # noqa: F401

    from .context import count_tokens

    hosted.get("code_interpreter")
    count_tokens("warm up")


def _beat_sync(worker_id: str, ids: list[str], renew: bool, recover: bool) -> tuple[set[str], set[str]]:
    """A heartbeat's database work in one trip to a thread: renew the leases held (when due), say
    which runs are still held and which of them are being cancelled, and (when due) recover what
    nobody will finish."""
    if renew:
        state.renew_leases(worker_id, ids)
    held, cancelling = state.held_leases(worker_id, ids)
    if recover:
        recovery.recover()
    return held, cancelling


def _lease_lost(run_id: str, worker_id: str) -> bool:
    # Not held may also mean "just finished"; only a run that someone else holds or ended is lost.
    return not Run.objects.filter(id=run_id, lease_owner=worker_id).exists()


def _release(worker_id: str, ids: list[str]) -> None:
    Run.objects.filter(id__in=ids, lease_owner=worker_id).update(
        lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


class ReactorExecutor:
    """The embedded executor of `manage.py serve`: an Executor on daphne's own event loop.

    Runs and the requests that read them then share one loop: a delta published by a run wakes its
    readers directly, where an executor on a thread of its own would wake the serving loop through
    its self-pipe once per delta (a system call and an extra loop iteration, per token per reader).
    Nothing the engine does blocks the loop: the database is reached through asyncdb.db's threads.
    """

    def __init__(self, concurrency: int | None = None) -> None:
        self.executor = Executor(concurrency=concurrency)
        self._task: asyncio.Future[None] | None = None

    def install(self) -> ReactorExecutor:
        """Start with daphne's reactor and stop before it does (call after importing daphne.server,
        which installs the asyncio reactor)."""
        from twisted.internet import reactor as installed

        reactor: Any = installed  # its interfaces are zope declarations, not types mypy follows
        reactor.callWhenRunning(self._start)
        reactor.addSystemEventTrigger("before", "shutdown", self._stop)
        return self

    def _start(self) -> None:
        self._task = asyncio.ensure_future(self.executor.run_forever())

    def _stop(self) -> Any:
        from twisted.internet.defer import Deferred

        if self._task is None or self._task.done():
            return None
        self.executor.stop()
        return Deferred.fromFuture(self._task)


class ThreadedExecutor:
    """An Executor on its own event loop in a daemon thread (tests; anything that is not daphne)."""

    def __init__(self, concurrency: int | None = None) -> None:
        self.executor = Executor(concurrency=concurrency)
        self._thread: threading.Thread | None = None
        self._started = threading.Event()

    def start(self) -> ThreadedExecutor:
        self._thread = threading.Thread(target=self._main, name="run-executor", daemon=True)
        self._thread.start()
        self._started.wait(10)
        return self

    def _main(self) -> None:
        async def main() -> None:
            task = asyncio.ensure_future(self.executor.run_forever())
            await asyncio.sleep(0)
            self._started.set()
            await task

        try:
            asyncio.run(main())
        finally:
            self._started.set()
            asyncdb.shutdown("runs")

    def stop(self, timeout: float = 10) -> None:
        self.executor.stop()
        if self._thread:
            self._thread.join(timeout)
