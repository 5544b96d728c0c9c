"""Run model-written Python in a throwaway bubblewrap (bwrap) sandbox.

Every `execute()` call starts a fresh process: Python variables do NOT persist between calls (no
kernel is kept alive), but files written to the working directory do, because the caller passes the
same `workdir` again. Inside the sandbox that directory is `/mnt/data` (OpenAI's convention) and is
the current directory. When the code's last statement is an expression, its repr is printed, as a
notebook cell would show it.

Isolation (see bwrap.py for the exact command line):
- new user, pid, network, ipc, uts and cgroup namespaces: no network at all, loopback included;
- only /usr (minus /usr/local), the sandbox venv and the base interpreter's prefix are visible,
  read-only; /tmp and /dev/shm are small tmpfs; the root is read-only; /etc holds only a synthetic
  passwd/group/hosts and ld.so.cache;
- the environment is cleared: none of the server's variables (API keys, DJANGO_SECRET_KEY) leak;
- a seccomp filter (seccomp.py) denies io_uring, ptrace, bpf, keyrings, userfaultfd, perf events,
  the mount API, new namespaces, module loading and kexec;
- each execution runs in its own cgroup (cgroups.py): memory (swap included), processes and CPU
  seconds are bounded for all its processes together, and the whole cgroup is killed at the end;
- rlimits (CPU, address space, processes, file size, no core dumps) are also set per process by the
  runner inside the sandbox: they are what remains where cgroups are unavailable;
- the workdir's size and number of entries are bounded per thread: a monitor polls them while the
  code runs and kills the execution when it goes over, and the files it created are then removed;
- a wall-clock timeout SIGKILLs the sandbox's pid 1, and with it every process of its pid namespace;
  --die-with-parent does the same if the server dies.
Every server-side access to the workdir (seeding, scanning, collecting outputs, deleting) goes
through workdir.py, which never follows a link the code planted. docs/security.md has the details,
including what degrades without cgroups or seccomp (`status()` reports it, as do the log and the
admin index). /proc/self/mountinfo still shows host paths of the mounts.

When the server runs as root, bwrap runs as an unprivileged host uid (CODE_INTERPRETER_SANDBOX_UID):
the kernel does not enforce RLIMIT_NPROC for root, and files written to the workdir must not be
owned by root. The workdir is then owned by that uid, and every directory above it must be
searchable by it (not under /root or pytest's 0700 tmp dirs).

The code runs as pid 1 of its pid namespace (--as-pid-1): when it exits, every process it started
dies too. As an init process it ignores signals it has no handler for (os.kill(os.getpid(), 9) is a
no-op), which is why the runner installs its own SIGXCPU handler.

The sandbox interpreter is a dedicated venv built by scripts/sandbox-venv.sh (numpy, pandas,
matplotlib); it holds a hard-linked (or copied) snapshot of the base interpreter's prefix in
`base-python/`, mounted at the base prefix's real path, because that path may sit under a directory
the sandbox uid cannot traverse (pyenv under /root).

Django settings read (all optional; the module also works without configured settings):
    CODE_INTERPRETER_CPU_SECONDS       10          CPU seconds per execution (all its processes)
    CODE_INTERPRETER_WALL_SECONDS      30          wall-clock timeout of one execution
    CODE_INTERPRETER_MEMORY_BYTES      512 MiB     memory of one execution (cgroup; RLIMIT_AS per process)
    CODE_INTERPRETER_MAX_PROCESSES     64          processes/threads of one execution (pids.max, RLIMIT_NPROC)
    CODE_INTERPRETER_MAX_OUTPUT_BYTES  64 KiB      stdout+stderr kept in `logs`
    CODE_INTERPRETER_MAX_FILE_BYTES    32 MiB      RLIMIT_FSIZE (largest file the code can write)
    CODE_INTERPRETER_WORKDIR_BYTES     256 MiB     allocated size of a thread's /mnt/data
    CODE_INTERPRETER_WORKDIR_MAX_FILES 5000        files + directories in a thread's /mnt/data
    CODE_INTERPRETER_TMPFS_BYTES       64 MiB      size of /tmp and of /dev/shm inside
    CODE_INTERPRETER_CGROUPS           auto        auto | v2 | v1 | off
    CODE_INTERPRETER_SECCOMP           1           0 turns the seccomp filter off (not recommended)
    CODE_INTERPRETER_VENV              <DATA_DIR>/sandbox-venv
    CODE_INTERPRETER_SANDBOX_UID       65534       host uid/gid of the sandbox when running as root
    DATA_DIR                           <repo>/var
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import cgroups, seccomp, streams
from . import workdir as wd
from .bwrap import (
    STATUS_CPU,
    STATUS_MEMORY,
    SandboxUnavailable,
    available,
    bwrap_argv,
    check_available,
    probe_namespaces,
    spawn_kwargs,
)
from .config import Limits, host_uid, human_bytes, sandbox_python, setting, venv_path

__all__ = [
    "ExecutionResult",
    "Limits",
    "SandboxUnavailable",
    "available",
    "execute",
    "sandbox_python",
    "status",
    "venv_path",
]

log = logging.getLogger(__name__)
# Old names, still used by tests and the benchmark.
_probe_namespaces = probe_namespaces
_host_uid = host_uid
# bwrap reports "exit-code" 128+N when the command died from signal N.
_SIGNAL_EXIT_BASE = 128
# How often the monitor reads the cgroup's counters and re-measures the workdir.
POLL_SECONDS = 0.1
DISK_POLL_SECONDS = 0.2
# Blocks on stdin until the server has put it in the execution's cgroup, then becomes bwrap. `read`
# consumes exactly one line from a pipe, so the code that follows on stdin reaches the runner intact.
_WRAPPER = 'IFS= read -r _ || exit 111; exec "$@"'


@dataclass
class ExecutionResult:
    logs: str
    exit_code: int | None  # None when the sandbox was killed on timeout
    timed_out: bool
    memory_exceeded: bool
    killed_reason: str | None
    output_truncated: bool
    # Regular files created or modified in the workdir, relative to it. Symlinks are never reported:
    # the code could point one at a server file and have the server hand it out.
    files: list[Path]
    duration: float
    disk_exceeded: bool = False
    notes: list[str] = field(default_factory=list)  # what the server did about limits, for the logs


# --------------------------------------------------------------------------- what is enforced


@functools.cache
def _seccomp_problem() -> str | None:
    if not setting("CODE_INTERPRETER_SECCOMP"):
        return "no seccomp filter: disabled by CODE_INTERPRETER_SECCOMP=0"
    return seccomp.problem()


def status() -> list[str]:
    """Warnings about protections missing on this server, each saying what is enforced instead."""
    limits = Limits()
    warnings = []
    support = cgroups.detect()
    if support.version is None:
        warnings.append(
            f"Code interpreter: no per-execution cgroup ({support.problem}). Enforced instead, per "
            f"process only: RLIMIT_AS {human_bytes(limits.memory_bytes)}, RLIMIT_CPU "
            f"{limits.cpu_seconds:g} s, RLIMIT_NPROC {limits.max_processes} (per uid in the "
            f"sandbox's user namespace); per execution: the wall-clock limit of "
            f"{limits.wall_seconds:g} s and the workdir quota. Several processes of one execution "
            "can together use a multiple of the memory and CPU limits."
        )
    problem = _seccomp_problem()
    if problem:
        warnings.append(
            f"Code interpreter: {problem}. Enforced instead: namespaces, no capabilities, "
            "--disable-userns (no nested user namespaces); io_uring, ptrace of the sandbox's own "
            "processes, bpf, keyctl, userfaultfd and perf_event_open reach the host kernel."
        )
    return warnings


@functools.cache
def _warn_once() -> None:
    for warning in status():
        log.warning("%s", warning)


# --------------------------------------------------------------------------- workdir bookkeeping


def _prepare(workdir: Path) -> tuple[int, wd.Scan]:
    """Blocking set-up, run in a thread: checks, the workdir's fd, and its contents before the run."""
    check_available()
    # The parent is the server's CODE_INTERPRETER_WORKDIR_ROOT (trusted); the workdir itself is
    # opened without following a link and handed to the sandbox uid, with what it contains.
    uid = host_uid()
    fd = wd.open_workdir(workdir.parent.resolve(), workdir.name, uid=uid)
    try:
        return fd, wd.scan(fd, uid=uid)
    except BaseException:
        os.close(fd)
        raise


def _roll_back(fd: int, before: wd.Scan) -> int:
    """Remove every entry the execution created (the outermost new ones); how many were removed."""
    after = wd.scan(fd)
    new = after.paths - before.paths
    outermost = [p for p in new if p.rpartition("/")[0] not in new]
    for path in outermost:
        with contextlib.suppress(OSError):
            wd.remove_entry(fd, path)
    return len(outermost)


class _Monitor:
    """Enforces what no rlimit can while the code runs: the execution's total CPU seconds and memory
    (from its cgroup's counters) and the workdir's size and entry count."""

    def __init__(self, cg: cgroups.ExecutionCgroup | None, fd: int, limits: Limits, before: wd.Scan) -> None:
        self.cg, self.fd, self.limits = cg, fd, limits
        # A workdir already over its quota (a lowered setting) may shrink but not grow.
        self.max_bytes = max(limits.workdir_bytes, before.disk_bytes)
        self.max_entries = max(limits.workdir_max_files, before.entries)
        self.reason: str | None = None  # "cpu", "memory" or "disk"
        self.detail = ""

    async def watch(self, kill: object) -> None:
        assert callable(kill)
        next_disk = 0.0
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if self.cg is not None:
                if self.cg.oom_killed():
                    self.reason = "memory"
                elif self.cg.cpu_seconds() > self.limits.cpu_seconds:
                    self.reason = "cpu"
            if self.reason is None and time.monotonic() >= next_disk:
                found = await asyncio.to_thread(wd.scan, self.fd, max_entries=self.max_entries)
                over = found.over(self.max_bytes, self.max_entries)
                if over:
                    self.reason, self.detail = "disk", over
                next_disk = time.monotonic() + DISK_POLL_SECONDS
            if self.reason is not None:
                kill()  # the sandbox's pid 1: its pid namespace dies with it; close() sweeps the cgroup
                return


# --------------------------------------------------------------------------- execute


async def execute(code: str, workdir: Path, *, limits: Limits | None = None) -> ExecutionResult:
    """Run `code` in a fresh sandboxed process with `workdir` as /mnt/data (and cwd).

    Never raises for failures of the code itself (they come back in `logs` and the flags); raises
    SandboxUnavailable when the sandbox itself cannot be set up.
    """
    limits = limits or Limits()
    _warn_once()
    fd, before = await asyncio.to_thread(_prepare, Path(workdir))
    try:
        support = cgroups.detect()
        cg = None
        if support.version is not None:
            try:
                cg = await asyncio.to_thread(
                    cgroups.ExecutionCgroup,
                    support,
                    memory_bytes=limits.memory_bytes,
                    max_processes=limits.max_processes,
                )
            except OSError as exc:
                raise SandboxUnavailable(f"could not create the execution's cgroup: {exc}") from exc
        try:
            return await _run(code, fd, before, limits, cg)
        finally:
            if cg is not None:
                await asyncio.to_thread(cg.close)
    finally:
        os.close(fd)


async def _run(
    code: str, fd: int, before: wd.Scan, limits: Limits, cg: cgroups.ExecutionCgroup | None
) -> ExecutionResult:
    status_r, status_w = os.pipe()
    json_r, json_w = os.pipe()
    data_fds: list[int] = []  # filled by bwrap_argv
    child_fds = [status_w, json_w]  # the write ends go to bwrap only
    out = streams.OutputBuffer(limits.max_output_bytes)
    monitor = _Monitor(cg, fd, limits, before)
    killed_by_us = False
    bwrap_status = ""
    start = time.monotonic()
    try:
        seccomp_fd = seccomp.program_fd() if _seccomp_problem() is None else None
        if seccomp_fd is not None:
            child_fds.append(seccomp_fd)
        argv = bwrap_argv(
            venv_path(),
            fd,
            limits,
            status_fd=status_w,
            json_fd=json_w,
            data_fds=data_fds,
            seccomp_fd=seccomp_fd,
            file_bytes=min(limits.max_file_bytes, limits.workdir_bytes),
        )
        child_fds += data_fds
        data_fds.clear()
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                _WRAPPER,
                "sandbox",
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=[*child_fds, fd],
                start_new_session=True,  # its own process group, for the fallback kill
                **spawn_kwargs(),
            )
        except OSError as exc:
            raise SandboxUnavailable(f"bwrap could not be started: {exc}") from exc
        finally:
            # The child holds its own copies; ours would keep the pipes from reaching EOF.
            while child_fds:
                os.close(child_fds.pop())
        assert proc.stdin is not None and proc.stdout is not None
        if cg is not None:
            try:
                cg.add(proc.pid)  # the wrapper waits on stdin: nothing of bwrap has run yet
            except OSError as exc:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
                raise SandboxUnavailable(f"could not move the sandbox into its cgroup: {exc}") from exc

        def kill() -> None:
            nonlocal bwrap_status
            bwrap_status += streams.read_available(json_r).decode(errors="replace")
            streams.kill(proc, bwrap_status)

        feeder = asyncio.create_task(streams.feed(proc.stdin, b"\n" + code.encode("utf-8", "surrogatepass")))
        watcher = asyncio.create_task(monitor.watch(kill))
        try:
            await asyncio.wait_for(
                asyncio.gather(streams.pump(proc.stdout, out), proc.wait()), timeout=limits.wall_seconds
            )
        except TimeoutError:
            killed_by_us = True
            kill()
            # The namespace dies with its pid 1; give the last output a moment to drain, then move on.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(streams.pump(proc.stdout, out), proc.wait()), timeout=5)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
            if proc.returncode is None:  # cancelled, or the drain above gave up
                kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), timeout=5)
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        duration = time.monotonic() - start
        status = streams.read_available(status_r)
        bwrap_status += streams.read_available(json_r).decode(errors="replace")
    finally:
        for f in (status_r, json_r, *child_fds, *data_fds):
            os.close(f)

    exit_code = streams.json_field(bwrap_status, "exit-code")
    if exit_code is None and not killed_by_us and monitor.reason is None:
        # bwrap never ran the command (it reports "exit-code" for anything it started).
        message = out.text().strip() or f"exit status {proc.returncode}"
        if "Permission denied" in message and host_uid() is not None:
            message += (
                f" (bwrap runs as uid {host_uid()}: every directory above the workdir and the "
                "sandbox venv must be searchable by that uid)"
            )
        raise SandboxUnavailable(f"bwrap failed to start the sandbox: {message}")

    result = ExecutionResult(
        logs="",
        exit_code=exit_code,
        timed_out=killed_by_us,
        memory_exceeded=STATUS_MEMORY in status or (cg is not None and cg.oom_killed()),
        killed_reason=None,
        output_truncated=out.truncated,
        files=[],
        duration=duration,
    )
    _explain(result, limits, monitor, status, out, killed_by_us)
    if result.killed_reason and cg is not None and cg.pids_limited():
        result.killed_reason += f" (the limit of {limits.max_processes} processes was reached)"
    result.logs = out.text()
    if monitor.reason == "disk":
        removed = await asyncio.to_thread(_roll_back, fd, before)
        result.notes.append(f"{removed} new entries of /mnt/data were removed.")
    else:
        after = await asyncio.to_thread(wd.scan, fd)
        result.files = sorted(Path(p) for p, sig in after.files.items() if before.files.get(p) != sig)
    return result


def _explain(
    result: ExecutionResult,
    limits: Limits,
    monitor: _Monitor,
    status: bytes,
    out: streams.OutputBuffer,
    killed_by_us: bool,
) -> None:
    """Set killed_reason and the flags from what killed the code (ours first, then its signal)."""
    code = result.exit_code
    signum = code - _SIGNAL_EXIT_BASE if code is not None and code > _SIGNAL_EXIT_BASE else None
    if killed_by_us or monitor.reason is not None:
        result.exit_code = None
    if killed_by_us:
        result.killed_reason = f"Execution timed out after {limits.wall_seconds:g} s"
    elif (
        monitor.reason == "cpu"
        or signum == signal.SIGXCPU
        or (signum == signal.SIGKILL and STATUS_CPU in status)
    ):
        result.timed_out = True
        result.killed_reason = f"CPU time limit of {limits.cpu_seconds:g} s exceeded"
    elif monitor.reason == "memory":
        result.memory_exceeded = True
    elif monitor.reason == "disk":
        result.disk_exceeded = True
        result.killed_reason = (
            f"Disk quota of /mnt/data exceeded ({monitor.detail}; the limits are "
            f"{human_bytes(limits.workdir_bytes)} and {limits.workdir_max_files} entries); the "
            "execution was stopped and the files it created were removed"
        )
    elif signum == signal.SIGXFSZ:
        result.killed_reason = f"File size limit of {human_bytes(limits.max_file_bytes)} exceeded"
    elif signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS) and _looks_out_of_memory(
        out
    ):
        result.memory_exceeded = True
    elif signum is not None and not result.memory_exceeded:
        result.killed_reason = f"Killed by signal {_SIGNAL_NAMES.get(signum, signum)}"
    if result.memory_exceeded and result.killed_reason is None:
        result.killed_reason = f"Memory limit of {human_bytes(limits.memory_bytes)} exceeded"


_SIGNAL_NAMES = {s.value: s.name for s in signal.Signals}


def _looks_out_of_memory(out: streams.OutputBuffer) -> bool:
    """C extensions that hit RLIMIT_AS abort instead of raising MemoryError; recognise their words."""
    tail = out.tail.decode("utf-8", "replace") if out.tail else out.head.decode("utf-8", "replace")
    return any(
        w in tail for w in ("std::bad_alloc", "Cannot allocate memory", "out of memory", "MemoryError")
    )
