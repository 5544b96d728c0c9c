"""Processes the benchmark starts, and the CPU time they use.

Every child runs in its own session (so its whole process group can be signalled by id) and gets
SIGTERM from the kernel if the benchmark dies without cleaning up (PR_SET_PDEATHSIG). `Procs.stop_all`
runs from `finally`, from atexit and on SIGTERM/SIGINT.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

CLK_TCK = os.sysconf("SC_CLK_TCK")
ROOT_DIR = Path(__file__).resolve().parent.parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def _stat(pid: int) -> tuple[int, float] | None:
    """(ppid, own + reaped children's CPU seconds) of a live process, from /proc/<pid>/stat."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may contain spaces or parentheses: split after its last ')'.
    fields = raw[raw.rindex(")") + 2 :].split()
    ppid = int(fields[1])
    utime, stime, cutime, cstime = (int(x) for x in fields[11:15])
    return ppid, (utime + stime + cutime + cstime) / CLK_TCK


def _all_ppids() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            st = _stat(int(entry.name))
            if st is not None:
                out[int(entry.name)] = st[0]
    return out


def tree(roots: Iterable[int]) -> set[int]:
    """The roots and all their live descendants."""
    ppids = _all_ppids()
    children: dict[int, list[int]] = {}
    for pid, ppid in ppids.items():
        children.setdefault(ppid, []).append(pid)
    seen: set[int] = set()
    todo = [r for r in roots if r in ppids]
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(children.get(pid, []))
    return seen


def cpu_seconds(roots: Iterable[int]) -> float:
    """utime+stime of every process in the trees under `roots`, plus what their exited children used
    (cutime+cstime). Differences of two readings are the CPU used in between: a child that exits in
    between moves its time into its parent's cutime/cstime, so nothing is lost or counted twice."""
    return sum(st[1] for pid in tree(roots) if (st := _stat(pid)) is not None)


@dataclass
class Procs:
    """Everything started here, stopped in reverse order."""

    procs: list[tuple[str, subprocess.Popen[bytes], object]] = field(default_factory=list)
    cleanups: list[tuple[str, Callable[[], object], object]] = field(default_factory=list)
    logs: list[IO[bytes]] = field(default_factory=list)

    def start(
        self,
        name: str,
        argv: list[str],
        *,
        env: dict[str, str],
        cwd: Path,
        log: Path | None = None,
        stdin: int | None = None,
        stdout: int | None = None,
        owner: object = None,
    ) -> subprocess.Popen[bytes]:
        out: IO[bytes] | int = subprocess.DEVNULL
        if log is not None:
            out = log.open("wb")
            self.logs.append(out)
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=cwd,
            stdin=stdin if stdin is not None else subprocess.DEVNULL,
            stdout=stdout if stdout is not None else out,
            stderr=out,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        self.procs.append((name, proc, owner))
        return proc

    def on_stop(self, name: str, fn: Callable[[], object], owner: object = None) -> None:
        self.cleanups.append((name, fn, owner))

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
        """SIGTERM the process group we started, then SIGKILL it if it lingers."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)
        else:
            # The leader is gone; a grandchild may still hold the group.
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
        self.procs = [t for t in self.procs if t[1] is not proc]

    def stop_all_of(self, owner: object) -> None:
        """Stop what `owner` started (everything when owner is None), newest first, then its clean-ups."""
        for name, proc, o in reversed(list(self.procs)):
            if owner is None or o is owner:
                try:
                    self.stop(proc)
                except Exception as exc:
                    print(f"# could not stop {name} ({proc.pid}): {exc}", file=sys.stderr)
                    self.procs = [t for t in self.procs if t[1] is not proc]
        for item in reversed(list(self.cleanups)):
            name, fn, o = item
            if owner is None or o is owner:
                self.cleanups.remove(item)
                try:
                    fn()
                except Exception as exc:
                    print(f"# clean-up {name} failed: {exc}", file=sys.stderr)

    def stop_all(self) -> None:
        self.stop_all_of(None)
        for f in self.logs:
            with contextlib.suppress(Exception):
                f.close()
        self.logs.clear()


PROCS = Procs()


_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def _on_signal(signum: int, frame: object) -> None:
    # Turn SIGTERM/SIGHUP into the same unwinding as Ctrl-C, so every `finally` runs; a second signal
    # must not interrupt that clean-up half way.
    for sig in _SIGNALS:
        signal.signal(sig, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def install_cleanup() -> None:
    atexit.register(PROCS.stop_all)
    # Set explicitly: a process started in the background by a shell inherits SIGINT ignored.
    for sig in _SIGNALS:
        signal.signal(sig, _on_signal)


def wait_until(
    pred: Callable[[], bool], timeout: float, what: str, alive: Callable[[], bool] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if alive is not None and not alive():
            raise RuntimeError(f"{what}: the process exited")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(0.1)
