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


# --------------------------------------------------------------------------- runner (inside)

# What the runner writes on its status fd: one byte per event. Signal numbers (1-64) come from
# Python's wakeup fd, written by the C-level handler even while the code is stuck in a C call.
STATUS_MEMORY = b"M"
STATUS_CPU = bytes([signal.SIGXCPU])

# Runs inside the sandbox as `python -c RUNNER cpu as nproc fsize status_fd`, as the pid namespace's
# pid 1; the code arrives on stdin. It sets the rlimits itself so they apply after the user
# namespace exists (RLIMIT_NPROC then counts only this sandbox's processes). As pid 1 it would
# ignore SIGXCPU (the kernel spares a namespace's init signals it has no handler for), so it
# installs one; the hard CPU limit (soft + 1 s) SIGKILLs it if that handler cannot run.
RUNNER = r"""
import _ast, _signal, builtins, os, resource, sys
# Only builtin modules up front: `ast`, `signal` and `traceback` pull in enum/re/tokenize, which
# would add ~100 ms to every execution. traceback is imported when there is one to print.

def _cpu_exceeded(signum, frame):
    os._exit(128 + signum)

def _main():
    cpu, mem, nproc, fsize, status_fd = (int(a) for a in sys.argv[1:6])
    os.set_inheritable(status_fd, False)
    os.set_blocking(status_fd, False)
    _signal.signal(_signal.SIGXCPU, _cpu_exceeded)
    _signal.set_wakeup_fd(status_fd, warn_on_full_buffer=False)
    source = sys.stdin.buffer.read().decode("utf-8", "replace")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = open(0, closefd=False)
    for res, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)), (resource.RLIMIT_AS, (mem, mem)),
                       (resource.RLIMIT_NPROC, (nproc, nproc)), (resource.RLIMIT_FSIZE, (fsize, fsize)),
                       (resource.RLIMIT_CORE, (0, 0))):
        resource.setrlimit(res, value)
    filename = "<code>"
    module = type(sys)("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    sys.argv = [filename]
    try:
        tree = compile(source, filename, "exec", _ast.PyCF_ONLY_AST)
        last = None
        if tree.body and isinstance(tree.body[-1], _ast.Expr):
            last = _ast.Expression(tree.body.pop().value)
        exec(compile(tree, filename, "exec"), module.__dict__)
        if last is not None:
            value = eval(compile(last, filename, "eval"), module.__dict__)
            if value is not None:
                print(repr(value))
    except SystemExit:
        raise
    except BaseException as exc:
        seen, e = set(), exc
        while e is not None and id(e) not in seen:
            if isinstance(e, MemoryError):
                os.write(status_fd, b"M")
                break
            seen.add(id(e))
            e = e.__cause__ or e.__context__
        import linecache, traceback
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        # Drop the runner's own frame: the model should see only its code.
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        sys.stdout.flush()
        traceback.print_exception(type(exc), exc, tb)
        sys.stderr.flush()
        os._exit(1)

_main()
"""


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
    data_fds: list[int],
    seccomp_fd: int | None,
    file_bytes: int,
) -> list[str]:
    """The command line; every fd it names must be passed to bwrap (workdir_fd, seccomp_fd and
    those appended to data_fds). The workdir is bound by fd: bwrap never resolves its path."""
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
        str(max(1, int(limits.cpu_seconds + 0.999))),
        str(int(limits.memory_bytes)),
        str(int(limits.max_processes)),
        str(int(file_bytes)),
        str(status_fd),
    ]
    return argv
