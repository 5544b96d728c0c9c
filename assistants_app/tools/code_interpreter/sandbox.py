"""Run model-written Python in a throwaway bubblewrap (bwrap) sandbox.

Every `execute()` call starts a fresh process: Python variables do NOT persist between calls (no
kernel is kept alive), but files written to the working directory do, because the caller passes the
same `workdir` again. Inside the sandbox that directory is `/mnt/data` (OpenAI's convention) and is
the current directory. When the code's last statement is an expression, its repr is printed, as a
notebook cell would show it.

Isolation (see `_bwrap_argv` for the exact command line):
- new user, pid, network, ipc, uts and cgroup namespaces: no network at all, loopback included;
- only /usr (minus /usr/local), the sandbox venv and the base interpreter's prefix are visible,
  read-only; /tmp and /dev/shm are small tmpfs; the root is read-only; /etc holds only a synthetic
  passwd/group/hosts and ld.so.cache;
- the environment is cleared: none of the server's variables (API keys, DJANGO_SECRET_KEY) leak;
- rlimits (CPU, address space, processes, file size, no core dumps) are set by the runner inside
  the sandbox, after the namespaces exist, so the process limit counts only this sandbox;
- a wall-clock timeout SIGKILLs the sandbox's pid 1, and with it every process of its pid namespace;
  --die-with-parent does the same if the server dies.
Not covered: memory is limited per process (RLIMIT_AS), not per sandbox, so max_processes
processes could together use max_processes x memory_bytes (a cgroup would bound the total); disk
use of the workdir is bounded only per file; /proc/self/mountinfo shows host paths of the mounts.
When the server runs as root, bwrap runs as an unprivileged host uid (CODE_INTERPRETER_SANDBOX_UID):
the kernel does not enforce RLIMIT_NPROC for root, and files written to the workdir must not be
owned by root. execute() then chowns the workdir to that uid, and every directory above the
workdir must be searchable by it (not under /root or pytest's 0700 tmp dirs).

The code runs as pid 1 of its pid namespace (--as-pid-1): when it exits, every process it started
dies too. As an init process it ignores signals it has no handler for (os.kill(os.getpid(), 9) is a
no-op), which is why the runner installs its own SIGXCPU handler.

The sandbox interpreter is a dedicated venv built by scripts/sandbox-venv.sh (numpy, pandas,
matplotlib); it holds a hard-linked (or copied) snapshot of the base interpreter's prefix in `base-python/`,
mounted at the base prefix's real path, because that path may sit under a directory the sandbox
uid cannot traverse (pyenv under /root).

Django settings read (all optional; the module also works without configured settings):
    CODE_INTERPRETER_CPU_SECONDS      10           RLIMIT_CPU per process
    CODE_INTERPRETER_WALL_SECONDS     30           wall-clock timeout of one execution
    CODE_INTERPRETER_MEMORY_BYTES     512 MiB      RLIMIT_AS per process
    CODE_INTERPRETER_MAX_PROCESSES    64           RLIMIT_NPROC (processes/threads in the sandbox)
    CODE_INTERPRETER_MAX_OUTPUT_BYTES 64 KiB       stdout+stderr kept in `logs`
    CODE_INTERPRETER_MAX_FILE_BYTES   32 MiB       RLIMIT_FSIZE (largest file the code can write)
    CODE_INTERPRETER_TMPFS_BYTES      64 MiB       size of /tmp and of /dev/shm inside
    CODE_INTERPRETER_VENV             <DATA_DIR>/sandbox-venv
    CODE_INTERPRETER_SANDBOX_UID      65534        host uid/gid of the sandbox when running as root
    DATA_DIR                          <repo>/var
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MiB = 1024 * 1024
SANDBOX_WORKDIR = "/mnt/data"
MPLCONFIGDIR = "/tmp/matplotlib"
# The uid/gid the code sees inside its user namespace (mapped to the host uid bwrap runs as).
INNER_UID = 1000
BWRAP_PACKAGE = "bubblewrap"
_REPO_DIR = Path(__file__).resolve().parents[3]
# bwrap reports "exit-code" 128+N when the command died from signal N.
_SIGNAL_EXIT_BASE = 128


class SandboxUnavailable(RuntimeError):
    """bwrap is missing, cannot create namespaces, or the sandbox venv has not been built."""


def _setting(name: str, default: Any) -> Any:
    """A Django setting, or the default when settings are absent or not configured."""
    try:
        from django.conf import settings

        return getattr(settings, name, default)
    except Exception:  # ImproperlyConfigured, or Django not importable: stay usable as a pure module.
        return default


def _setting_factory(name: str, default: Any) -> Any:
    return field(default_factory=lambda: _setting(name, default))


@dataclass
class Limits:
    cpu_seconds: float = _setting_factory("CODE_INTERPRETER_CPU_SECONDS", 10)
    wall_seconds: float = _setting_factory("CODE_INTERPRETER_WALL_SECONDS", 30)
    memory_bytes: int = _setting_factory("CODE_INTERPRETER_MEMORY_BYTES", 512 * MiB)
    max_processes: int = _setting_factory("CODE_INTERPRETER_MAX_PROCESSES", 64)
    max_output_bytes: int = _setting_factory("CODE_INTERPRETER_MAX_OUTPUT_BYTES", 64 * 1024)
    max_file_bytes: int = _setting_factory("CODE_INTERPRETER_MAX_FILE_BYTES", 32 * MiB)

    def __post_init__(self) -> None:
        for name in (
            "cpu_seconds",
            "wall_seconds",
            "memory_bytes",
            "max_processes",
            "max_output_bytes",
            "max_file_bytes",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive")


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


# --------------------------------------------------------------------------- configuration


def data_dir() -> Path:
    return Path(_setting("DATA_DIR", _REPO_DIR / "var"))


def venv_path() -> Path:
    """Where scripts/sandbox-venv.sh builds the sandbox venv (the script mirrors this default)."""
    configured = _setting("CODE_INTERPRETER_VENV", None)
    return Path(configured) if configured else data_dir() / "sandbox-venv"


def sandbox_python() -> Path:
    """The interpreter that runs inside the sandbox: the sandbox venv's python (same path inside)."""
    return venv_path() / "bin" / "python3"


def _base_prefix(venv: Path) -> Path:
    """The base interpreter's prefix, from the venv's pyvenv.cfg (`home` is its bin directory)."""
    for line in (venv / "pyvenv.cfg").read_text().splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip() == "home":
            return Path(value.strip()).parent
    raise SandboxUnavailable(f"{venv}/pyvenv.cfg has no 'home' line; rebuild with scripts/sandbox-venv.sh")


def _host_uid() -> int | None:
    """The host uid to run bwrap as, or None to keep the server's own (non-root) uid."""
    if os.geteuid() != 0:
        return None
    return int(_setting("CODE_INTERPRETER_SANDBOX_UID", 65534))


def _tmpfs_bytes() -> int:
    return int(_setting("CODE_INTERPRETER_TMPFS_BYTES", 64 * MiB))


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


def _spawn_kwargs() -> dict[str, Any]:
    """How to start bwrap: with an empty environment and, under root, as the sandbox uid."""
    # bwrap's own pid-1 reaper inside the sandbox keeps bwrap's environment, and the code can read
    # it from /proc/1/environ: --clearenv alone would still leak the server's secrets.
    kwargs: dict[str, Any] = {"env": {}}
    uid = _host_uid()
    if uid is not None:
        kwargs.update(user=uid, group=uid, extra_groups=[])
    return kwargs


@functools.cache
def _probe_namespaces() -> str | None:
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
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10, **_spawn_kwargs())
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


def _check_available() -> None:
    problem = _probe_namespaces()
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
        _check_available()
    except SandboxUnavailable:
        return False
    return True


# --------------------------------------------------------------------------- runner (inside)

# What the runner writes on its status fd: one byte per event. Signal numbers (1-64) come from
# Python's wakeup fd, written by the C-level handler even while the code is stuck in a C call.
_STATUS_MEMORY = b"M"
_STATUS_CPU = bytes([signal.SIGXCPU])

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


def _bwrap_argv(
    venv: Path, workdir: Path, limits: Limits, status_fd: int, json_fd: int, data_fds: list[int]
) -> list[str]:
    base = _base_prefix(venv)
    base_copy = venv / "base-python"
    # Prefer the venv's copy of the base prefix: the real one may be unreachable for the sandbox uid.
    base_src = base_copy if base_copy.is_dir() else base
    tmpfs = str(_tmpfs_bytes())
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
        "--bind",
        str(workdir),
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
        "--",
        str(sandbox_python()),
        "-c",
        RUNNER,
        str(max(1, int(limits.cpu_seconds + 0.999))),
        str(int(limits.memory_bytes)),
        str(int(limits.max_processes)),
        str(int(limits.max_file_bytes)),
        str(status_fd),
    ]
    return argv


# --------------------------------------------------------------------------- workdir bookkeeping

_Snapshot = dict[str, tuple[int, int, int, int]]


def _snapshot(workdir: Path) -> _Snapshot:
    """Regular files under workdir (symlinks not followed) with what changes when they are written."""
    found: _Snapshot = {}
    for dirpath, _dirnames, filenames in os.walk(workdir, followlinks=False):
        for name in filenames:
            path = os.path.join(dirpath, name)
            try:
                st = os.lstat(path)
            except OSError:
                continue
            if (st.st_mode & 0o170000) == 0o100000:  # S_ISREG
                found[os.path.relpath(path, workdir)] = (
                    st.st_ino,
                    st.st_size,
                    st.st_mtime_ns,
                    st.st_ctime_ns,
                )
    return found


def _prepare(workdir: Path) -> tuple[Path, _Snapshot]:
    """Blocking set-up, run in a thread: checks, the workdir, and its contents before the run."""
    _check_available()
    workdir = workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    uid = _host_uid()
    if uid is not None:
        _hand_workdir_to(workdir, uid)
    return workdir, _snapshot(workdir)


def _hand_workdir_to(workdir: Path, uid: int) -> None:
    """Make the workdir writable by the sandbox uid (root servers only); never follow symlinks."""
    os.chown(workdir, uid, uid, follow_symlinks=False)
    for dirpath, dirnames, filenames in os.walk(workdir, followlinks=False):
        for name in dirnames + filenames:
            with contextlib.suppress(OSError):
                os.chown(os.path.join(dirpath, name), uid, uid, follow_symlinks=False)


def _read_available(fd: int) -> bytes:
    """Whatever is buffered in a pipe, without blocking."""
    os.set_blocking(fd, False)
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


def _human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", MiB), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"


class _OutputBuffer:
    """Keeps the head and the tail of the output within `limit` bytes (tracebacks come last)."""

    def __init__(self, limit: int) -> None:
        self.head_limit = limit // 2
        self.tail_limit = limit - self.head_limit
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def add(self, chunk: bytes) -> None:
        self.total += len(chunk)
        room = self.head_limit - len(self.head)
        if room > 0:
            self.head += chunk[:room]
            chunk = chunk[room:]
        if chunk:
            self.tail += chunk
            if len(self.tail) > self.tail_limit:
                del self.tail[: len(self.tail) - self.tail_limit]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + len(self.tail)

    def text(self) -> str:
        if not self.truncated:
            return (self.head + self.tail).decode("utf-8", "replace")
        omitted = self.total - len(self.head) - len(self.tail)
        marker = (
            f"\n\n[... output truncated: {omitted} bytes omitted, "
            f"{self.head_limit + self.tail_limit} bytes kept ...]\n\n"
        )
        return self.head.decode("utf-8", "replace") + marker + self.tail.decode("utf-8", "replace")


# --------------------------------------------------------------------------- execute


async def _pump(stream: asyncio.StreamReader, out: _OutputBuffer) -> None:
    while chunk := await stream.read(65536):
        out.add(chunk)


async def _feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(ConnectionError):  # the code may exit before reading everything
        stdin.write(data)
        await stdin.drain()
        stdin.close()
        await stdin.wait_closed()


def _kill(proc: asyncio.subprocess.Process, bwrap_status: str) -> None:
    """SIGKILL the sandbox's pid 1, which takes every process of its pid namespace with it.

    Killing the sandbox's pid 1 rather than bwrap lets bwrap reap it and exit normally: were bwrap
    killed first (--die-with-parent then kills pid 1), pid 1 would be re-parented to the host's
    init, which in some containers never reaps, and stay a zombie. bwrap is the fallback.
    """
    child = _json_field(bwrap_status, "child-pid")
    if child is not None and proc.returncode is None:
        with contextlib.suppress(OSError):
            pidfd = os.pidfd_open(child)
            try:
                # Still bwrap's child, so not a recycled pid (bwrap is alive: it has not reaped it).
                if _parent_pid(child) == proc.pid:
                    signal.pidfd_send_signal(pidfd, signal.SIGKILL)
                    return
            finally:
                os.close(pidfd)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def _parent_pid(pid: int) -> int | None:
    with contextlib.suppress(OSError, ValueError), open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    return None


async def execute(code: str, workdir: Path, *, limits: Limits | None = None) -> ExecutionResult:
    """Run `code` in a fresh sandboxed process with `workdir` as /mnt/data (and cwd).

    Never raises for failures of the code itself (they come back in `logs` and the flags); raises
    SandboxUnavailable when the sandbox itself cannot be set up.
    """
    limits = limits or Limits()
    venv = venv_path()
    workdir, before = await asyncio.to_thread(_prepare, Path(workdir))

    status_r, status_w = os.pipe()
    json_r, json_w = os.pipe()
    data_fds: list[int] = []  # filled by _bwrap_argv
    child_fds = [status_w, json_w]  # the write ends go to bwrap only
    out = _OutputBuffer(limits.max_output_bytes)
    killed_by_us = False
    bwrap_status = ""
    start = time.monotonic()
    try:
        argv = await asyncio.to_thread(_bwrap_argv, venv, workdir, limits, status_w, json_w, data_fds)
        child_fds += data_fds
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                pass_fds=child_fds,
                start_new_session=True,  # its own process group, for the fallback kill
                **_spawn_kwargs(),
            )
        except OSError as exc:
            raise SandboxUnavailable(f"bwrap could not be started: {exc}") from exc
        finally:
            # The child holds its own copies; ours would keep the pipes from reaching EOF.
            while child_fds:
                os.close(child_fds.pop())
            data_fds.clear()
        assert proc.stdin is not None and proc.stdout is not None
        feeder = asyncio.create_task(_feed(proc.stdin, code.encode("utf-8", "surrogatepass")))
        try:
            await asyncio.wait_for(
                asyncio.gather(_pump(proc.stdout, out), proc.wait()), timeout=limits.wall_seconds
            )
        except TimeoutError:
            killed_by_us = True
            bwrap_status += _read_available(json_r).decode(errors="replace")
            _kill(proc, bwrap_status)
            # The namespace dies with bwrap; give the last output a moment to drain, then move on.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(_pump(proc.stdout, out), proc.wait()), timeout=5)
        finally:
            if proc.returncode is None:  # cancelled, or the drain above gave up
                bwrap_status += _read_available(json_r).decode(errors="replace")
                _kill(proc, bwrap_status)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(proc.wait(), timeout=5)
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
        duration = time.monotonic() - start
        status = _read_available(status_r)
        bwrap_status += _read_available(json_r).decode(errors="replace")
    finally:
        for fd in (status_r, json_r, *child_fds, *data_fds):
            os.close(fd)

    exit_code = _json_field(bwrap_status, "exit-code")
    if exit_code is None and not killed_by_us:
        # bwrap never ran the command (it reports "exit-code" for anything it started).
        message = out.text().strip() or f"exit status {proc.returncode}"
        if "Permission denied" in message and _host_uid() is not None:
            message += (
                f" (bwrap runs as uid {_host_uid()}: every directory above the workdir and the "
                "sandbox venv must be searchable by that uid)"
            )
        raise SandboxUnavailable(f"bwrap failed to start the sandbox: {message}")

    timed_out = killed_by_us
    memory_exceeded = _STATUS_MEMORY in status
    signum = (
        exit_code - _SIGNAL_EXIT_BASE if exit_code is not None and exit_code > _SIGNAL_EXIT_BASE else None
    )
    killed_reason: str | None = None
    if killed_by_us:
        exit_code = None
        killed_reason = f"Execution timed out after {limits.wall_seconds:g} s"
    elif signum == signal.SIGXCPU or (signum == signal.SIGKILL and _STATUS_CPU in status):
        timed_out = True
        killed_reason = f"CPU time limit of {limits.cpu_seconds:g} s exceeded"
    elif signum == signal.SIGXFSZ:
        killed_reason = f"File size limit of {_human_bytes(limits.max_file_bytes)} exceeded"
    elif signum in (signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGBUS) and _looks_out_of_memory(
        out
    ):
        memory_exceeded = True
    elif signum is not None:
        killed_reason = f"Killed by signal {_SIGNAL_NAMES.get(signum, signum)}"
    if memory_exceeded and killed_reason is None:
        killed_reason = f"Memory limit of {_human_bytes(limits.memory_bytes)} exceeded"

    after = await asyncio.to_thread(_snapshot, workdir)
    files = sorted(Path(p) for p, sig in after.items() if before.get(p) != sig)
    return ExecutionResult(
        logs=out.text(),
        exit_code=exit_code,
        timed_out=timed_out,
        memory_exceeded=memory_exceeded,
        killed_reason=killed_reason,
        output_truncated=out.truncated,
        files=files,
        duration=duration,
    )


_SIGNAL_NAMES = {s.value: s.name for s in signal.Signals}


def _json_field(bwrap_status: str, name: str) -> int | None:
    """A field of bwrap's --json-status-fd stream (one JSON object per line): child-pid, exit-code."""
    for line in bwrap_status.splitlines():
        with contextlib.suppress(ValueError, TypeError):
            doc = json.loads(line)
            if isinstance(doc, dict) and name in doc:
                return int(doc[name])
    return None


def _looks_out_of_memory(out: _OutputBuffer) -> bool:
    """C extensions that hit RLIMIT_AS abort instead of raising MemoryError; recognise their words."""
    tail = out.tail.decode("utf-8", "replace") if out.tail else out.head.decode("utf-8", "replace")
    return any(
        w in tail for w in ("std::bad_alloc", "Cannot allocate memory", "out of memory", "MemoryError")
    )
