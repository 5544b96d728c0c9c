"""The bubblewrap command line, the runner that executes the code inside, and the availability probe.

See sandbox.py for what the sandbox guarantees; this module only builds what it starts.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

from .config import Limits, host_uid, sandbox_python, tmpfs_bytes
from .runner import RUNNER

SANDBOX_WORKDIR = "/mnt/data"
MPLCONFIGDIR = "/tmp/matplotlib"
# The uid/gid the code sees inside its user namespace (mapped to the host uid bwrap runs as).
INNER_UID = 1000
BWRAP_PACKAGE = "bubblewrap"


class SandboxUnavailable(RuntimeError):
    """bwrap is missing, cannot create namespaces, or the sandbox venv has not been built."""


def base_prefix(venv: Path) -> Path:
    """The base interpreter's prefix, from the venv's pyvenv.cfg (`home` is its bin directory)."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home":
            return Path(value.strip()).parent
    raise SandboxUnavailable(f"{venv}/pyvenv.cfg has no 'home' line; rebuild with scripts/sandbox-venv.sh")


# --------------------------------------------------------------------------- availability

_NO_BWRAP = (
    f"bubblewrap is not installed: the code interpreter needs the `bwrap` binary "
    f"(Debian/Ubuntu: apt-get install {BWRAP_PACKAGE})"
)


def _bwrap() -> str:
    path = shutil.which("bwrap")
    if path is None:
        raise SandboxUnavailable(_NO_BWRAP)
    return path


def spawn_kwargs() -> dict[str, Any]:
    """How to start bwrap: with an empty environment and, under root, as the sandbox uid."""
    # bwrap's own pid-1 reaper inside the sandbox keeps bwrap's environment, and the code can read
    # it from /proc/1/environ: --clearenv alone would still leak the server's secrets.
    kwargs: dict[str, Any] = {"env": {}}
    uid = host_uid()
    if uid is not None:
        kwargs.update(user=uid, group=uid, extra_groups=[])
    return kwargs


@functools.cache
def probe_namespaces() -> str | None:
    """Start an empty sandbox once; None if it works, else bwrap's complaint. Cached per process."""
    try:
        argv = [
            _bwrap(),
            "--unshare-all",
            "--unshare-user",
            "--disable-userns",
            "--as-pid-1",
            "--die-with-parent",
            "--ro-bind",
            "/usr",
            "/usr",
            "--symlink",
            "usr/lib",
            "/lib",
            "--symlink",
            "usr/lib64",
            "/lib64",
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--",
            "/usr/bin/true",
        ]
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, **spawn_kwargs())
    except SandboxUnavailable as exc:
        return str(exc)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"bwrap could not be started: {exc}"
    if proc.returncode != 0:
        return (
            f"bwrap cannot create namespaces here ({proc.stderr.strip() or proc.returncode}); "
            f"unprivileged user namespaces must be enabled (package {BWRAP_PACKAGE})"
        )
    return None


def check_available() -> None:
    problem = probe_namespaces()
    if problem:
        raise SandboxUnavailable(problem)
    python = sandbox_python()
    if not os.path.lexists(python):  # a symlink to the base prefix, which may be unreachable here
        raise SandboxUnavailable(
            f"the sandbox venv is missing ({python} not found); build it with scripts/sandbox-venv.sh"
        )


def available() -> bool:
    """Cheap check: bwrap can create namespaces (probed once per process) and the venv exists."""
    try:
        check_available()
    except SandboxUnavailable:
        return False
    return True


# --------------------------------------------------------------------------- runner (runner.py)

# What the runner writes on its status fd: one byte per event. Signal numbers (1-64) come from
# Python's wakeup fd, written by the C-level handler even while the code is stuck in a C call.
STATUS_MEMORY = b"M"
STATUS_CPU = bytes([signal.SIGXCPU])


# --------------------------------------------------------------------------- bwrap command line


def _data_fd(content: str, keep: list[int]) -> int:
    """A pipe whose read end yields `content` (small: it must fit the pipe buffer)."""
    r, w = os.pipe()
    keep.append(r)
    try:
        os.write(w, content.encode())
    finally:
        os.close(w)
    return r


def _matplotlib_cache_args(venv: Path, data_fds: list[int]) -> list[str]:
    """Copy the font list prebuilt by scripts/sandbox-venv.sh into the fresh MPLCONFIGDIR.

    Matplotlib wants a writable config dir and otherwise rescans every font on import (2-3 s per
    execution); --file copies the list into the sandbox's tmpfs, where it stays writable.
    """
    args = ["--perms", "0700", "--dir", MPLCONFIGDIR]
    for path in sorted((venv / "mplconfig").glob("fontlist-*.json")):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        data_fds.append(fd)
        args += ["--file", str(fd), f"{MPLCONFIGDIR}/{path.name}"]
    return args


def bwrap_argv(
    venv: Path,
    workdir_fd: int,
    limits: Limits,
    *,
    status_fd: int,
    json_fd: int,
    reply_fd: int,
    mode: str,
    data_fds: list[int],
    seccomp_fd: int | None,
    file_bytes: int,
) -> list[str]:
    """The command line; every fd it names must be passed to bwrap (workdir_fd, seccomp_fd, the
    runner's status_fd and reply_fd, and those appended to data_fds). The workdir is bound by fd:
    bwrap never resolves its path. `mode` is the runner's: "once" or "session" (runner.py)."""
    base = base_prefix(venv)
    base_copy = venv / "base-python"
    # Prefer the venv's copy of the base prefix: the real one may be unreachable for the sandbox uid.
    base_src = base_copy if base_copy.is_dir() else base
    tmpfs = str(tmpfs_bytes())
    passwd = (
        f"root:x:0:0::/root:/bin/sh\nsandbox:x:{INNER_UID}:{INNER_UID}::/tmp:/bin/sh\n"
        "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"
    )
    group = f"root:x:0:\nsandbox:x:{INNER_UID}:\nnogroup:x:65534:\n"
    hosts = "127.0.0.1 localhost sandbox\n::1 localhost ip6-localhost\n"
    argv = [
        _bwrap(),
        "--unshare-all",  # user, pid, net (loopback only, unreachable from the host), ipc, uts, cgroup
        "--unshare-user",
        "--disable-userns",  # and no nested user namespaces for the code
        "--uid",
        str(INNER_UID),
        "--gid",
        str(INNER_UID),
        "--hostname",
        "sandbox",
        "--as-pid-1",  # no bwrap reaper as pid 1: bwrap could exit before it and leave a zombie (_kill)
        "--die-with-parent",  # the server's death (or the fallback SIGKILL of bwrap) kills the sandbox
        "--new-session",  # no controlling terminal: blocks TIOCSTI injection into the server's tty
        "--cap-drop",
        "ALL",
        # Filesystem: /usr read-only, minus /usr/local (site-specific tools and configuration).
        "--ro-bind",
        "/usr",
        "/usr",
        "--tmpfs",
        "/usr/local",
        "--symlink",
        "usr/bin",
        "/bin",
        "--symlink",
        "usr/sbin",
        "/sbin",
        "--symlink",
        "usr/lib",
        "/lib",
        "--symlink",
        "usr/lib64",
        "/lib64",
        "--dir",
        "/etc",
        "--ro-bind-try",
        "/etc/ld.so.cache",
        "/etc/ld.so.cache",
        "--ro-bind-data",
        str(_data_fd(passwd, data_fds)),
        "/etc/passwd",
        "--ro-bind-data",
        str(_data_fd(group, data_fds)),
        "/etc/group",
        "--ro-bind-data",
        str(_data_fd(hosts, data_fds)),
        "/etc/hosts",
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--perms",
        "1777",
        "--size",
        tmpfs,
        "--tmpfs",
        "/dev/shm",
        "--perms",
        "1777",
        "--size",
        tmpfs,
        "--tmpfs",
        "/tmp",
        *_matplotlib_cache_args(venv, data_fds),
        # The interpreter, at the paths the venv expects; after /tmp so a venv there stays visible.
        "--ro-bind",
        str(base_src),
        str(base),
        "--ro-bind",
        str(venv),
        str(venv),
        "--bind-fd",
        str(workdir_fd),
        SANDBOX_WORKDIR,
        "--remount-ro",
        "/dev",
        "--remount-ro",
        "/",  # bwrap's root is an unbounded tmpfs: no writes outside the mounts above
        "--chdir",
        SANDBOX_WORKDIR,
        "--clearenv",
        "--setenv",
        "PATH",
        f"{venv}/bin:/usr/bin:/bin",
        "--setenv",
        "HOME",
        "/tmp",
        "--setenv",
        "USER",
        "sandbox",
        "--setenv",
        "LOGNAME",
        "sandbox",
        "--setenv",
        "LANG",
        "C.UTF-8",
        "--setenv",
        "TMPDIR",
        "/tmp",
        "--setenv",
        "PYTHONUNBUFFERED",
        "1",  # keeps stdout and stderr interleaved in order
        "--setenv",
        "PYTHONIOENCODING",
        "utf-8",
        "--setenv",
        "PYTHONDONTWRITEBYTECODE",
        "1",  # no __pycache__ reported as output files
        "--setenv",
        "MPLBACKEND",
        "Agg",
        "--setenv",
        "MPLCONFIGDIR",
        MPLCONFIGDIR,
        # One BLAS/OpenMP thread: CPU time is rationed per process and each thread's stack and
        # malloc arena count against RLIMIT_AS.
        "--setenv",
        "OPENBLAS_NUM_THREADS",
        "1",
        "--setenv",
        "OMP_NUM_THREADS",
        "1",
        "--setenv",
        "MKL_NUM_THREADS",
        "1",
        "--setenv",
        "MALLOC_ARENA_MAX",
        "2",
        "--json-status-fd",
        str(json_fd),
        *(["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []),
        "--",
        str(sandbox_python()),
        "-c",
        RUNNER,
        mode,
        str(max(1, int(limits.cpu_seconds + 0.999))),
        str(int(limits.memory_bytes)),
        str(int(limits.max_processes)),
        str(int(file_bytes)),
        str(status_fd),
        str(reply_fd),
    ]
    return argv
