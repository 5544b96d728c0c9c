"""One cgroup per code-interpreter execution: memory, process and CPU limits for all its processes.

rlimits are per process: six processes can each stay under RLIMIT_AS while together using six
times the memory. A cgroup bounds the execution as a whole:

- memory: `memory.max` + `memory.swap.max` 0 (v2) or `memory.limit_in_bytes` and
  `memory.memsw.limit_in_bytes` (v1, swap included when the kernel accounts it); an OOM kill in
  the cgroup ends the whole execution (`memory.oom.group` on v2, the monitor on v1);
- processes: `pids.max`;
- CPU: the monitor in sandbox.py polls `cpu.stat` usage_usec (v2) or `cpuacct.usage` (v1) and
  kills the cgroup once the execution's processes together used the CPU budget.

Where the cgroups live: under the server process's own cgroup (from /proc/self/cgroup), in a child
named `code-interpreter`, so whatever limits the server itself runs under also bound the sandboxes.
v2 needs that cgroup delegated (systemd `Delegate=yes`) with the memory and pids controllers; the
server then moves itself into a `server` leaf so the controllers can be enabled for siblings (the
"no internal processes" rule). v1 needs the `memory`, `pids` and `cpuacct` hierarchies writable
(root). `detect()` says which applies, or why neither does.

The sandbox's processes join before any model code runs: sandbox.py starts a tiny /bin/sh wrapper
that blocks on a pipe, the server writes its pid into cgroup.procs of every hierarchy, and only then
lets the wrapper exec bwrap (children are born in their parent's cgroup).

Freezing (Python sessions, session.py): between two executions a session's cgroup is frozen with
cgroup v2's `cgroup.freeze`, so code left running in the background (a thread, a child process)
uses no CPU and writes nothing while no execution is accounted. v2 has it in every cgroup; on a v1
host the same file exists in the unified (cgroup2) hierarchy that systemd's hybrid layout mounts,
where the session gets one more cgroup (`UNIFIED`, no controllers needed). v1's own freezer is not
used: a task it froze ignores SIGKILL until thawed, so a frozen session would outlive a killed
server. Without either, `Support.freezer` is None and sessions are off (sandbox.py says so).
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import logging
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from .config import setting

log = logging.getLogger(__name__)

GROUP = "code-interpreter"
V1_CONTROLLERS = ("memory", "pids", "cpuacct")
UNIFIED = "unified"  # key of the cgroup2 hierarchy next to v1 controllers (only for freezing)
_counter = itertools.count()


@dataclass(frozen=True)
class Support:
    version: int | None  # 2, 1, or None when per-execution cgroups are unavailable
    parents: dict[str, Path] = field(default_factory=dict)  # hierarchy -> directory for executions
    problem: str = ""
    freezer: str | None = None  # the hierarchy whose cgroups have cgroup.freeze ("" or UNIFIED)
    freezer_problem: str = ""


def _proc_cgroups() -> dict[str, str]:
    """hierarchy name -> this process's cgroup path; "" is the unified (v2) hierarchy."""
    out: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as fh:
        for line in fh:
            _, names, path = line.rstrip("\n").split(":", 2)
            for name in names.split(","):
                out[name.removeprefix("name=")] = path
    return out


def _mounts() -> dict[str, Path]:
    """hierarchy name -> mount point, from /proc/self/mountinfo ("" for cgroup2)."""
    found: dict[str, Path] = {}
    with contextlib.suppress(OSError), open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            fstype, _source, options = [*right.split(), "", "", ""][:3]
            mount_point = Path(left.split()[4].replace("\\040", " "))
            if fstype == "cgroup2":
                found.setdefault("", mount_point)
            elif fstype == "cgroup":
                for opt in options.split(","):
                    found.setdefault(opt, mount_point)
    return found


def _read(path: Path) -> str:
    return path.read_text().strip()


def _v2(mounts: dict[str, Path], own: dict[str, str]) -> Support:
    if "" not in mounts or "" not in own:
        return Support(None, problem="no cgroup v2 hierarchy")
    base = mounts[""] / own[""].lstrip("/")
    try:
        available = _read(base / "cgroup.controllers").split()
    except OSError as exc:
        return Support(None, problem=f"cgroup v2: cannot read {base}/cgroup.controllers ({exc.strerror})")
    missing = [c for c in ("memory", "pids") if c not in available]
    if base.name == "server" and not missing:
        # Moved into the leaf by an earlier process of this server: executions are its siblings.
        base = base.parent
    if missing:
        return Support(None, problem=f"cgroup v2: controllers {', '.join(missing)} not delegated to {base}")
    try:
        enabled = _read(base / "cgroup.subtree_control").split()
        if not {"memory", "pids"} <= set(enabled):
            leaf = base / "server"
            leaf.mkdir(exist_ok=True)
            for pid in _read(base / "cgroup.procs").split():
                with contextlib.suppress(ProcessLookupError):
                    (leaf / "cgroup.procs").write_text(pid)
            (base / "cgroup.subtree_control").write_text("+memory +pids")
        parent = base / GROUP
        parent.mkdir(exist_ok=True)
        (parent / "cgroup.subtree_control").write_text("+memory +pids")
    except OSError as exc:
        return Support(None, problem=f"cgroup v2: {base} is not delegated to this server ({exc})")
    return Support(2, {"": parent}, freezer="")


def _v1(mounts: dict[str, Path], own: dict[str, str]) -> Support:
    parents: dict[str, Path] = {}
    for name in V1_CONTROLLERS:
        if name not in mounts:
            return Support(None, problem=f"cgroup v1: no {name} hierarchy mounted")
        parent = mounts[name] / own.get(name, "/").lstrip("/") / GROUP
        try:
            parent.mkdir(exist_ok=True)
        except OSError as exc:
            return Support(None, problem=f"cgroup v1: cannot create {parent} ({exc.strerror})")
        parents[name] = parent
    unified, problem = _unified_parent(mounts, own)
    if unified is None:
        return Support(1, parents, freezer_problem=problem)
    return Support(1, {**parents, UNIFIED: unified}, freezer=UNIFIED)


def _unified_parent(mounts: dict[str, Path], own: dict[str, str]) -> tuple[Path | None, str]:
    """Next to v1 controllers: a directory in the cgroup2 hierarchy whose cgroups can be frozen."""
    if "" not in mounts or "" not in own:
        return None, "no cgroup2 (unified) hierarchy mounted next to the v1 controllers"
    parent = mounts[""] / own[""].lstrip("/") / GROUP
    try:
        parent.mkdir(exist_ok=True)
    except OSError as exc:
        return None, f"cannot create {parent} ({exc.strerror})"
    if not (parent / "cgroup.freeze").exists():
        return None, f"{parent} has no cgroup.freeze (kernel older than 5.2)"
    return parent, ""


@functools.cache
def detect() -> Support:
    """Which cgroup setup this process can use (probed once per process; creates the parents)."""
    mode = str(setting("CODE_INTERPRETER_CGROUPS")).lower()
    if mode == "off":
        return Support(None, problem="disabled by CODE_INTERPRETER_CGROUPS=off")
    mounts, own = _mounts(), _proc_cgroups()
    problems = []
    for version, probe in ((2, _v2), (1, _v1)):
        if mode not in ("auto", f"v{version}"):
            continue
        support = probe(mounts, own)
        if support.version is not None:
            _remove_stale(support)
            for parent in support.parents.values():  # made again by each execution, see close()
                with contextlib.suppress(OSError):
                    parent.rmdir()
            return support
        problems.append(support.problem)
    return Support(None, problem="; ".join(problems) or f"unknown CODE_INTERPRETER_CGROUPS={mode!r}")


def _remove_stale(support: Support) -> None:
    """Execution cgroups left behind by a server process that died (their name holds its pid)."""
    for parent in support.parents.values():
        with contextlib.suppress(OSError):
            for child in parent.iterdir():
                pid = child.name.split("-")[1] if child.name.startswith("exec-") else ""
                if pid.isdigit() and not _alive(int(pid)):
                    _kill_and_remove(child, attempts=3)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_and_remove(path: Path, *, attempts: int = 50) -> bool:
    for _ in range(attempts):
        try:
            pids = _read(path / "cgroup.procs").split()
        except FileNotFoundError:
            return True
        except OSError:
            pids = []
        for pid in pids:
            with contextlib.suppress(OSError):
                os.kill(int(pid), signal.SIGKILL)
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            time.sleep(0.02)  # processes being torn down still count as members
    log.warning("could not remove cgroup %s", path)
    return False


class ExecutionCgroup:
    """The cgroup(s) of one execution. Create, add the wrapper's pid, poll, then close()."""

    def __init__(self, support: Support, *, memory_bytes: int, max_processes: int) -> None:
        assert support.version is not None
        self.version = support.version
        self.freezer = support.freezer
        name = f"exec-{os.getpid()}-{next(_counter)}-{os.urandom(4).hex()}"
        self.paths = {h: parent / name for h, parent in support.parents.items()}
        created: list[Path] = []
        try:
            for h, path in self.paths.items():
                _make(path, v2=self.version == 2 and not h)
                created.append(path)
            if self.version == 2:
                cg = self.paths[""]
                (cg / "memory.max").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):  # absent without swap accounting
                    (cg / "memory.swap.max").write_text("0")
                (cg / "memory.oom.group").write_text("1")
                (cg / "pids.max").write_text(str(max_processes))
            else:
                mem = self.paths["memory"]
                (mem / "memory.limit_in_bytes").write_text(str(memory_bytes))
                with contextlib.suppress(OSError):  # only with swap accounting (swapaccount=1)
                    (mem / "memory.memsw.limit_in_bytes").write_text(str(memory_bytes))
                (self.paths["pids"] / "pids.max").write_text(str(max_processes))
        except BaseException:
            for path in reversed(created):
                _kill_and_remove(path, attempts=3)
            raise

    def add(self, pid: int) -> None:
        for path in self.paths.values():
            (path / "cgroup.procs").write_text(str(pid))

    def cpu_seconds(self) -> float:
        with contextlib.suppress(OSError, ValueError):
            if self.version == 2:
                for line in (self.paths[""] / "cpu.stat").read_text().splitlines():
                    key, _, value = line.partition(" ")
                    if key == "usage_usec":
                        return int(value) / 1e6
            else:
                return int(_read(self.paths["cpuacct"] / "cpuacct.usage")) / 1e9
        return 0.0

    def oom_killed(self) -> bool:
        path = (
            self.paths[""] / "memory.events"
            if self.version == 2
            else self.paths["memory"] / "memory.oom_control"
        )
        return _counter_of(path, "oom_kill") > 0

    def pids_refusals(self) -> int:
        """How many forks pids.max refused so far (a session compares it with its value before)."""
        path = self.paths[""] / "pids.events" if self.version == 2 else self.paths["pids"] / "pids.events"
        return _counter_of(path, "max")

    def pids_limited(self) -> bool:
        return self.pids_refusals() > 0

    @property
    def can_freeze(self) -> bool:
        return self.freezer is not None

    def freeze(self) -> None:
        """Stop every process of the cgroup until thaw(); SIGKILL still works (cgroup v2 freezer)."""
        assert self.freezer is not None
        (self.paths[self.freezer] / "cgroup.freeze").write_text("1")

    def thaw(self) -> None:
        assert self.freezer is not None
        (self.paths[self.freezer] / "cgroup.freeze").write_text("0")

    def memory_peak(self) -> int:
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        path = (self.paths[""] if self.version == 2 else self.paths["memory"]) / name
        with contextlib.suppress(OSError, ValueError):
            return int(_read(path))
        return 0

    def kill(self, *, spare: int | None = None) -> None:
        """SIGKILL every process in the execution's cgroup but `spare` (thread-safe: only syscalls).

        Sparing bwrap lets it reap the sandbox's pid 1 and exit normally (see streams.kill)."""
        if self.freezer is not None and spare is None:
            with contextlib.suppress(OSError):
                (self.paths[self.freezer] / "cgroup.kill").write_text("1")
                return
        for path in self.paths.values():
            with contextlib.suppress(OSError):
                for pid in _read(path / "cgroup.procs").split():
                    if int(pid) != spare:
                        with contextlib.suppress(OSError):
                            os.kill(int(pid), signal.SIGKILL)

    def close(self) -> None:
        """Kill what is left and remove the cgroup(s), and their parent once no execution uses it:
        nothing is left behind in the server's cgroup (which its supervisor may want to remove)."""
        for path in self.paths.values():
            _kill_and_remove(path)
            with contextlib.suppress(OSError):  # EBUSY while other executions run
                path.parent.rmdir()


def _make(path: Path, *, v2: bool) -> None:
    """mkdir the execution's cgroup, (re)creating the parent that the last close() removed."""
    for attempt in range(3):
        try:
            path.parent.mkdir(exist_ok=True)
            if v2:
                (path.parent / "cgroup.subtree_control").write_text("+memory +pids")
            path.mkdir()
            return
        except FileNotFoundError:  # another process removed the parent in between: again
            if attempt == 2:
                raise


def _counter_of(path: Path, key: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    return 0
