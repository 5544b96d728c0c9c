"""Run model-written Python in a bubblewrap (bwrap) sandbox.

Two ways in. `execute()` starts a fresh sandboxed process for one execution and ends it. A Python
session (session.py, kept per thread by sessions.py) keeps one sandboxed interpreter alive between
executions, so variables, imports and definitions persist, as in a notebook: that is what the tool
uses where sessions are supported (`sessions_problem()` says why not otherwise). Either way files
written to the working directory persist, because the caller passes the same `workdir` again.
Inside the sandbox that directory is `/mnt/data` (OpenAI's convention) and is the current
directory. When the code's last statement is an expression, its repr is printed, as a notebook cell
would show it.

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
  a session's cgroup lives as long as the session: memory and processes bound the session as a
  whole, CPU seconds each execution (the cgroup's usage during it), and between executions the
  cgroup is frozen, so nothing the code left running in the background runs unaccounted;
- rlimits (CPU, address space, processes, file size, no core dumps) are also set per process by the
  runner inside the sandbox: they are what remains where cgroups are unavailable;
- the workdir's size and number of entries are bounded per thread: a monitor polls them while the
  code runs and kills the execution when it goes over, and the files it created are then removed;
- a wall-clock timeout SIGKILLs the sandbox's pid 1, and with it every process of its pid namespace
  (in a session too: a runaway execution ends its session, and the next execution's output says the
  Python state was lost); --die-with-parent does the same if the server dies.
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
    CODE_INTERPRETER_SESSION_IDLE_SECONDS 3600     a thread's Python session ends after this idle time
                                                   (0: no sessions, a fresh process per execution)
    CODE_INTERPRETER_MAX_SESSIONS      16          sessions kept per executor process (LRU beyond)
    CODE_INTERPRETER_VENV              <DATA_DIR>/sandbox-venv
    CODE_INTERPRETER_SANDBOX_UID       65534       host uid/gid of the sandbox when running as root
    DATA_DIR                           <repo>/var
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path

from . import cgroups, seccomp
from .bwrap import SandboxUnavailable, available, probe_namespaces
from .config import Limits, host_uid, human_bytes, sandbox_python, session_idle_seconds, venv_path
from .outcome import ExecutionResult
from .session import Session

__all__ = [
    "ExecutionResult",
    "Limits",
    "SandboxUnavailable",
    "available",
    "execute",
    "sandbox_python",
    "sessions_problem",
    "status",
    "venv_path",
]

log = logging.getLogger(__name__)
# Old names, still used by tests and the benchmark.
_probe_namespaces = probe_namespaces
_host_uid = host_uid
_seccomp_problem = seccomp.configured_problem


# --------------------------------------------------------------------------- what is enforced


def sessions_problem() -> str | None:
    """Why executions do not keep a Python session here (each runs in a fresh process), or None."""
    if session_idle_seconds() <= 0:
        return "disabled by CODE_INTERPRETER_SESSION_IDLE_SECONDS=0"
    support = cgroups.detect()
    if support.version is None:
        return f"no per-execution cgroup ({support.problem})"
    if support.freezer is None:
        return f"no cgroup that can be frozen between executions ({support.freezer_problem})"
    return None


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
            "can together use a multiple of the memory and CPU limits. Python sessions are off: "
            "each execution starts a fresh interpreter."
        )
    elif support.freezer is None and session_idle_seconds() > 0:
        warnings.append(
            f"Code interpreter: Python sessions are off: {sessions_problem()}. Each execution starts "
            "a fresh interpreter (variables do not persist between executions); all limits apply."
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


# --------------------------------------------------------------------------- execute


async def execute(code: str, workdir: Path, *, limits: Limits | None = None) -> ExecutionResult:
    """Run `code` in a fresh sandboxed process with `workdir` as /mnt/data (and cwd).

    Never raises for failures of the code itself (they come back in `logs` and the flags); raises
    SandboxUnavailable when the sandbox itself cannot be set up.
    """
    limits = limits or Limits()
    _warn_once()
    session = await Session.start(Path(workdir), limits, persistent=False)
    try:
        return await session.execute(code, limits)
    finally:
        await session.close()
