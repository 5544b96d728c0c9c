"""One sandboxed interpreter process: a session that keeps its Python state between executions, or a
single execution (`persistent=False`, what runs when sessions are off).

The process is started once (bwrap_argv, the runner of runner.py as the sandbox's pid 1, in a
cgroup it joins before anything of it runs) and then serves executions: the server writes a request
frame on the runner's stdin, reads the code's stdout and stderr (one pipe) into the execution's
OutputBuffer, and waits for the runner's DONE frame on its reply pipe, the process's death, or the
wall-clock limit. Limits hold per execution as before, measured from outside:

- CPU seconds: the session cgroup's usage minus its value when the execution started (Monitor);
- wall time: from the request to DONE; memory, processes and threads: the whole session's cgroup
  (its state counts); file size: RLIMIT_FSIZE; the workdir quota: scanned while the code runs;
- output: the execution's own OutputBuffer; everything the code printed before DONE is in the pipe
  when DONE arrives (the runner flushes first), so it is drained then, in order.

Between executions the cgroup is frozen (cgroup v2 `cgroup.freeze`; see cgroups.py): a background
thread or child process left by the code gets no CPU time and writes nothing until the next
execution, which is charged for what it then does. A runaway execution (wall or CPU limit, memory,
disk quota, a crash, a cancelled run) kills the whole session; `ended` then says why, for the note
the next execution's fresh session carries.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from pathlib import Path
from typing import Any

from . import cgroups, runner, seccomp, streams
from . import workdir as wd
from .bwrap import STATUS_MEMORY, SandboxUnavailable, bwrap_argv, check_available, spawn_kwargs
from .channel import Channel
from .config import Limits, host_uid, venv_path
from .outcome import ExecutionResult, Monitor, ended_reason, explain, roll_back

log = logging.getLogger(__name__)
# Blocks on stdin until the server has put it in the execution's cgroup, then becomes bwrap. `read`
# consumes exactly one line from a pipe, so the frames that follow on stdin reach the runner intact.
_WRAPPER = 'IFS= read -r _ || exit 111; exec "$@"'
_DRAIN_READS = 1024  # after DONE: what is left in the pipe, bounded
_GRACE_SECONDS = 5  # for the last output of a killed sandbox to arrive


def process_limits(limits: Limits) -> tuple[int, int, int]:
    """What a process fixes when it starts (memory, processes, file size); a session started with
    other values is replaced."""
    return (limits.memory_bytes, limits.max_processes, min(limits.max_file_bytes, limits.workdir_bytes))


class Session:
    """Use `await Session.start(...)`, then `execute()` (one at a time), then `close()`."""

    def __init__(self, workdir: Path, limits: Limits, *, persistent: bool) -> None:
        self.workdir, self.persistent = workdir, persistent
        self.process_limits = process_limits(limits)
        self.ended: str | None = None  # why the session is over (None while it lives)
        self.executions = 0
        self.last_used = time.monotonic()
        self.cg: cgroups.ExecutionCgroup | None = None
        self.fd = -1
        self.proc: asyncio.subprocess.Process | None = None
        self._loop = asyncio.get_running_loop()
        self._channel: Channel | None = None
        self._exited: asyncio.Future[int] | None = None
        self._closed = False

    # ----------------------------------------------------------------------------------- start

    @classmethod
    async def start(cls, workdir: Path, limits: Limits, *, persistent: bool) -> Session:
        """Start the sandbox and wait until its runner is ready; SandboxUnavailable if it cannot."""
        self = cls(Path(workdir), limits, persistent=persistent)
        try:
            await asyncio.to_thread(self._prepare, limits)
            await self._spawn(limits)
            await self._wait_ready(limits)
        except BaseException:
            await self.close()
            raise
        return self

    def _prepare(self, limits: Limits) -> None:
        """Blocking set-up, run in a thread: checks, the workdir's fd, the cgroup."""
        check_available()
        # The parent is the server's CODE_INTERPRETER_WORKDIR_ROOT (trusted); the workdir itself is
        # opened without following a link and handed to the sandbox uid.
        self.fd = wd.open_workdir(self.workdir.parent.resolve(), self.workdir.name, uid=host_uid())
        support = cgroups.detect()
        if self.persistent and support.freezer is None:
            raise SandboxUnavailable("Python sessions need a cgroup that can be frozen (cgroups.py)")
        if support.version is not None:
            try:
                self.cg = cgroups.ExecutionCgroup(
                    support, memory_bytes=limits.memory_bytes, max_processes=limits.max_processes
                )
            except OSError as exc:
                raise SandboxUnavailable(f"could not create the execution's cgroup: {exc}") from exc

    async def _spawn(self, limits: Limits) -> None:
        ch = self._channel = Channel(
            on_junk=lambda: self.kill("the code wrote to the sandbox's control channel")
        )
        child_fds = ch.child_ends()  # the write ends go to bwrap only
        data_fds: list[int] = []  # filled by bwrap_argv
        try:
            seccomp_fd = seccomp.program_fd() if seccomp.configured_problem() is None else None
            if seccomp_fd is not None:
                child_fds.append(seccomp_fd)
            argv = bwrap_argv(
                venv_path(),
                self.fd,
                limits,
                status_fd=ch.status_w,
                json_fd=ch.json_w,
                reply_fd=ch.reply_w,
                mode="session" if self.persistent else "once",
                data_fds=data_fds,
                seccomp_fd=seccomp_fd,
                file_bytes=self.process_limits[2],
            )
            child_fds += data_fds
            try:
                self.proc = await asyncio.create_subprocess_exec(
                    "/bin/sh",
                    "-c",
                    _WRAPPER,
                    "sandbox",
                    *argv,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=ch.out_w,
                    stderr=asyncio.subprocess.STDOUT,
                    pass_fds=[*child_fds, self.fd],
                    start_new_session=True,  # its own process group, for the fallback kill
                    **spawn_kwargs(),
                )
            except OSError as exc:
                raise SandboxUnavailable(f"bwrap could not be started: {exc}") from exc
        finally:
            # The child holds its own copies; ours would keep the pipes from reaching EOF.
            for f in child_fds:
                os.close(f)
        self._exited = asyncio.ensure_future(self.proc.wait())
        ch.start()
        if self.cg is not None:
            try:
                self.cg.add(self.proc.pid)  # the wrapper waits on stdin: nothing of bwrap has run yet
            except OSError as exc:
                raise SandboxUnavailable(f"could not move the sandbox into its cgroup: {exc}") from exc
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"\n")

    async def _wait_ready(self, limits: Limits) -> None:
        assert self._exited is not None and self._channel is not None
        ch = self._channel
        startup = ch.sink = streams.OutputBuffer(limits.max_output_bytes)
        both: set[asyncio.Future[Any]] = {ch.ready, self._exited}
        await asyncio.wait(both, timeout=limits.wall_seconds, return_when=asyncio.FIRST_COMPLETED)
        if ch.ready.done():
            ch.sink = None
            if self.persistent:
                self._freeze()
            return
        if not self._exited.done():
            self._kill_process()
            raise SandboxUnavailable(f"the sandbox did not start within {limits.wall_seconds:g} s")
        await self._wait_dead(1)
        message = startup.text().strip() or f"exit status {self._exited.result()}"
        if streams.json_field(ch.bwrap_status(), "exit-code") is not None:
            raise SandboxUnavailable(f"the sandbox's Python did not start: {message}")
        if "Permission denied" in message and host_uid() is not None:
            message += (
                f" (bwrap runs as uid {host_uid()}: every directory above the workdir and the "
                "sandbox venv must be searchable by that uid)"
            )
        raise SandboxUnavailable(f"bwrap failed to start the sandbox: {message}")

    # --------------------------------------------------------------------------- killing

    @property
    def alive(self) -> bool:
        return self.ended is None and self._exited is not None and not self._exited.done()

    def _kill_process(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            streams.kill(self.proc, self._channel.bwrap_status() if self._channel else "")
            self._thaw_for_exit()

    def _thaw_for_exit(self) -> None:
        # SIGKILL reaches frozen tasks (cgroup v2 freezer), so the sandbox dies frozen; bwrap, which
        # is in the cgroup too, must thaw to reap it and exit.
        if self.persistent and self.cg is not None:
            with contextlib.suppress(OSError):
                self.cg.thaw()

    def kill(self, reason: str) -> None:
        """End the session now (on its event loop); close() then reaps it."""
        self.ended = self.ended or reason
        self._kill_process()

    def hard_kill(self) -> None:
        """SIGKILL every process of the session but bwrap, then let bwrap exit. Safe from any thread
        (only syscalls): what a thread deletion in a request thread uses before the loop hears."""
        if self.cg is not None:
            self.cg.kill(spare=self.proc.pid if self.proc is not None else None)
            self._thaw_for_exit()

    def _freeze(self) -> None:
        if self.cg is None:
            return
        try:
            self.cg.freeze()
        except OSError as exc:
            log.warning("could not freeze a code-interpreter session: %s", exc)
            self.kill("the session could not be paused between executions")

    async def _wait_dead(self, seconds: float) -> None:
        """Until the process has exited and its output pipe is at EOF, or `seconds` passed."""
        assert self._exited is not None and self._channel is not None
        eof = asyncio.ensure_future(self._channel.out_eof.wait())
        try:
            both: set[asyncio.Future[Any]] = {self._exited, eof}
            await asyncio.wait(both, timeout=seconds)
        finally:
            eof.cancel()

    async def close(self, reason: str = "the session was closed") -> None:
        if self._closed:
            return
        self._closed = True
        self.ended = self.ended or reason
        if self._exited is not None and not self._exited.done():
            self._kill_process()
            await asyncio.wait({self._exited}, timeout=_GRACE_SECONDS)
            if not self._exited.done() and self.cg is not None:
                self.cg.kill()  # bwrap too
                await asyncio.wait({self._exited}, timeout=_GRACE_SECONDS)
        if self.proc is not None and self.proc.stdin is not None:
            self.proc.stdin.close()
        if self._channel is not None:
            self._channel.close()
        if self.cg is not None:
            await asyncio.to_thread(self.cg.close)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    # --------------------------------------------------------------------------- execute

    async def _send(self, data: bytes) -> None:
        assert self.proc is not None and self.proc.stdin is not None
        with contextlib.suppress(ConnectionError):  # the code may end the process first
            self.proc.stdin.write(data)
            await self.proc.stdin.drain()

    async def execute(self, code: str, limits: Limits) -> ExecutionResult:
        """Run `code`; never raises for failures of the code itself (they come back in the result)."""
        if not self.alive or (not self.persistent and self.executions):
            raise RuntimeError("this session is over")
        self.executions += 1
        try:
            return await self._execute(code, limits)
        finally:
            self.last_used = time.monotonic()

    async def _execute(self, code: str, limits: Limits) -> ExecutionResult:
        assert self._exited is not None and self._channel is not None
        ch, cg = self._channel, self.cg
        # Scanned while the session is frozen: nothing in the sandbox changes the tree meanwhile.
        before = await asyncio.to_thread(wd.scan, self.fd, uid=host_uid())
        cpu_start = cg.cpu_seconds() if cg is not None else 0.0
        pids_start = cg.pids_refusals() if cg is not None else 0
        monitor = Monitor(cg, self.fd, limits, before, cpu_start)
        out = ch.sink = streams.OutputBuffer(limits.max_output_bytes)
        ch.status()  # what an earlier execution left: not this one's
        exec_id = secrets.randbits(63)
        done: asyncio.Future[tuple[int, int]] = self._loop.create_future()
        ch.pending = (exec_id, done)
        killed_by_us = False
        start = time.monotonic()
        if self.persistent and cg is not None:
            try:
                cg.thaw()
            except OSError as exc:
                self.kill("the session could not be resumed")
                raise SandboxUnavailable(f"could not resume the Python session: {exc}") from exc
        feeder = asyncio.ensure_future(self._send(runner.request(exec_id, code)))
        watcher = asyncio.ensure_future(monitor.watch(self._kill_process))
        waits: set[asyncio.Future[Any]] = {self._exited, done} if self.persistent else {self._exited}
        try:
            finished, _ = await asyncio.wait(
                waits, timeout=limits.wall_seconds, return_when=asyncio.FIRST_COMPLETED
            )
            if not finished:
                killed_by_us = True
                self._kill_process()
            completed = done.done() and not killed_by_us and monitor.reason is None and self.persistent
            if completed and monitor.oom_killed():  # after the last poll: the session is not intact
                completed = False
                self._kill_process()
            if completed:
                ch.read_output(_DRAIN_READS)
                self._freeze()
            else:
                # The namespace dies with its pid 1; give the last output a moment to drain.
                await self._wait_dead(_GRACE_SECONDS)
        except BaseException:  # cancelled (the run was cancelled or expired): the code may still run
            self.kill("the previous execution was cancelled")
            await asyncio.wait({self._exited}, timeout=_GRACE_SECONDS)
            raise
        finally:
            for task in (watcher, feeder):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            ch.sink, ch.pending = None, None
        duration = time.monotonic() - start
        status = ch.status()
        exit_code: int | None
        if completed:
            exit_code, flags = done.result()
            if flags & runner.FLAG_MEMORY_ERROR:
                status += STATUS_MEMORY
        else:
            if not self._exited.done():  # the drain gave up: make sure it is dead
                self._kill_process()
                await asyncio.wait({self._exited}, timeout=_GRACE_SECONDS)
            exit_code = streams.json_field(ch.bwrap_status(), "exit-code")
        result = ExecutionResult(
            logs="",
            exit_code=exit_code,
            timed_out=killed_by_us,
            memory_exceeded=cg is not None and cg.oom_killed(),
            killed_reason=None,
            output_truncated=out.truncated,
            files=[],
            duration=duration,
            fresh_session=self.executions == 1,
        )
        explain(result, limits, monitor, status, out, killed_by_us, process_exited=not completed)
        if result.killed_reason and cg is not None and cg.pids_refusals() > pids_start:
            result.killed_reason += f" (the limit of {limits.max_processes} processes was reached)"
        result.logs = out.text()
        if monitor.reason == "disk":
            removed = await asyncio.to_thread(roll_back, self.fd, before)
            result.notes.append(f"{removed} new entries of /mnt/data were removed.")
        else:
            after = await asyncio.to_thread(wd.scan, self.fd)
            result.files = sorted(Path(p) for p, sig in after.files.items() if before.files.get(p) != sig)
        if not completed:
            self.ended = self.ended or ended_reason(result)
        if self.persistent and self.ended is not None:
            result.session_ended = self.ended
        return result
