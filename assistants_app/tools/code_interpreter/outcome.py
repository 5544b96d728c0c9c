"""What one execution produced, the monitor that enforces its limits, and how a kill is explained."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from . import cgroups, streams
from . import workdir as wd
from .bwrap import STATUS_CPU, STATUS_MEMORY
from .config import Limits, human_bytes

# bwrap reports "exit-code" 128+N when the command died from signal N.
SIGNAL_EXIT_BASE = 128
# How often the monitor reads the cgroup's counters and re-measures the workdir.
POLL_SECONDS = 0.1
DISK_POLL_SECONDS = 0.2


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
    # Sessions (sessions.py). fresh_session: this execution started a new interpreter. state_lost:
    # why earlier executions' Python state is gone, when it ran in a new session after one ended
    # (e.g. "the previous execution was stopped: CPU time limit of 1 s exceeded"). session_ended:
    # why this execution ended its session (the next one starts fresh); None while it lives on.
    fresh_session: bool = True
    state_lost: str | None = None
    session_ended: str | None = None


class Monitor:
    """Enforces what no rlimit can while the code runs: the execution's CPU seconds and memory (from
    its cgroup's counters, relative to their values when the execution started: a session's cgroup
    outlives its executions) and the workdir's size and entry count."""

    def __init__(
        self, cg: cgroups.ExecutionCgroup | None, fd: int, limits: Limits, before: wd.Scan, cpu_start: float
    ) -> None:
        self.cg, self.fd, self.limits, self.cpu_start = cg, fd, limits, cpu_start
        # A workdir already over its quota (a lowered setting) may shrink but not grow.
        self.max_bytes = max(limits.workdir_bytes, before.disk_bytes)
        self.max_entries = max(limits.workdir_max_files, before.entries)
        self.reason: str | None = None  # "cpu", "memory" or "disk"
        self.detail = ""

    async def watch(self, kill: Callable[[], None]) -> None:
        next_disk = 0.0
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if self.cg is not None and not self.oom_killed():
                if self.cg.cpu_seconds() - self.cpu_start > self.limits.cpu_seconds:
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

    def oom_killed(self) -> bool:
        """Whether the OOM killer acted in the cgroup (then the reason is "memory").

        Also asked once more when the code has finished: on cgroup v1 the kernel kills only one
        process, and the code can finish between two polls with its session's state part gone."""
        if self.reason is None and self.cg is not None and self.cg.oom_killed():
            self.reason = "memory"
        return self.reason == "memory"


def roll_back(fd: int, before: wd.Scan) -> int:
    """Remove every entry the execution created (the outermost new ones); how many were removed."""
    after = wd.scan(fd)
    new = after.paths - before.paths
    outermost = [p for p in new if p.rpartition("/")[0] not in new]
    for path in outermost:
        with contextlib.suppress(OSError):
            wd.remove_entry(fd, path)
    return len(outermost)


def explain(
    result: ExecutionResult,
    limits: Limits,
    monitor: Monitor,
    status: bytes,
    out: streams.OutputBuffer,
    killed_by_us: bool,
    *,
    process_exited: bool,
) -> None:
    """Set killed_reason and the flags from what killed the code (ours first, then its signal).

    A status above 128 means a signal only when the process died (bwrap's exit code); a session's
    execution that ended normally reports the code's own status (sys.exit(137) is just 137)."""
    code = result.exit_code
    signum = (
        code - SIGNAL_EXIT_BASE if process_exited and code is not None and code > SIGNAL_EXIT_BASE else None
    )
    if STATUS_MEMORY in status:  # the runner saw a MemoryError
        result.memory_exceeded = True
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


def ended_reason(result: ExecutionResult) -> str:
    """Why the session that ran `result` is gone, for the note on the next execution."""
    if result.killed_reason:
        reason = result.killed_reason
        if not reason[:2].isupper():  # "CPU time limit ..." keeps its capitals
            reason = reason[:1].lower() + reason[1:]
        return f"the previous execution was stopped: {reason}"
    return f"the Python process exited with status {result.exit_code} in the previous execution"
