"""The runner that executes the code inside the sandbox, and the frames it exchanges with the server.

The runner is the sandbox's pid 1 (`python -c RUNNER mode cpu as nproc fsize status_fd reply_fd`).
It reads requests from its stdin (the pipe the server writes; the runner moves it to a private fd
and puts /dev/null on fd 0 for the code), runs each in the same `__main__` globals, and answers each
with a fixed-size frame on `reply_fd`. stdout and stderr are one pipe the server reads.

Frames:
- request (server -> runner): id (8 bytes, big-endian) + length (4 bytes) + the code, UTF-8;
- reply (runner -> server), always REPLY_SIZE bytes: a 4-byte tag, the request id (8 bytes), the
  exit status (2 bytes, signed) and flags (2 bytes). `READY` once at start-up, before any code ran;
  `DONE` after each execution, once its output has been flushed to the output pipe.

The code runs in the runner's own process, so it can read or forge frames. Nothing the runner says
is trusted for enforcement: limits are measured from outside (cgroup counters, the wall clock, the
output pipe, the workdir), and between executions the session's cgroup is frozen, so a forged
early DONE only stops the sender's own execution. Replies are fixed-size binary, parsed with
int.from_bytes: nothing the code writes reaches a parser with any surface (no pickle/marshal/JSON).

Modes: `once` runs one execution and exits (what happens without sessions; RLIMIT_CPU and a SIGXCPU
handler bound its CPU per process, as before); `session` loops until the server closes the request
pipe. In a session, CPU seconds are measured per execution on the session's cgroup (the runner sets
no RLIMIT_CPU: that would count the whole session), SystemExit ends the cell, not the session (as in
a notebook), and matplotlib figures are closed after each execution (as a notebook's inline backend
does), so one execution's plot does not draw over the next one's.
"""

from __future__ import annotations

REPLY_SIZE = 16
TAG_READY = b"REDY"
TAG_DONE = b"DONE"
FLAG_MEMORY_ERROR = 1
REQUEST_HEADER = 12


def request(exec_id: int, code: str) -> bytes:
    data = code.encode("utf-8", "surrogatepass")
    return exec_id.to_bytes(8, "big") + len(data).to_bytes(4, "big") + data


def parse_reply(frame: bytes) -> tuple[bytes, int, int, int]:
    """(tag, id, exit status, flags) of one REPLY_SIZE frame."""
    assert len(frame) == REPLY_SIZE
    return (
        frame[:4],
        int.from_bytes(frame[4:12], "big"),
        int.from_bytes(frame[12:14], "big", signed=True),
        int.from_bytes(frame[14:16], "big"),
    )


# Only builtin modules up front: `ast`, `signal` and `traceback` pull in enum/re/tokenize, which
# would add ~100 ms to every start. traceback is imported when there is one to print.
RUNNER = r"""
import _ast, _signal, builtins, os, resource, sys

def _cpu_exceeded(signum, frame):
    os._exit(128 + signum)

def _read_exact(fd, n):
    buf = b""
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            os._exit(0)  # the server closed the request pipe: the session is over
        buf += chunk
    return buf

def _reply(fd, tag, exec_id, status, flags):
    frame = tag + exec_id.to_bytes(8, "big") + max(-32768, min(32767, status)).to_bytes(2, "big", signed=True)
    try:
        os.write(fd, frame + flags.to_bytes(2, "big"))
    except OSError:
        os._exit(70)  # the code closed or replaced the reply fd: the session cannot go on

def _is_memory_error(exc):
    seen, e = set(), exc
    while e is not None and id(e) not in seen:
        if isinstance(e, MemoryError):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False

def _run(source, filename, module, sources):
    # Returns (exit status, flags). Exceptions of the code are printed, without the runner's frames.
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
        return 0, 0
    except SystemExit as exc:
        code = exc.code
        if code is None or isinstance(code, int):
            return code or 0, 0
        print(code, file=sys.stderr)
        return 1, 0
    except BaseException as exc:
        flags = 1 if _is_memory_error(exc) else 0
        import linecache, traceback
        for name, text in sources.items():
            linecache.cache[name] = (len(text), None, text.splitlines(True), name)
        tb = exc.__traceback__.tb_next if exc.__traceback__ is not None else None
        try:
            sys.stdout.flush()
        except BaseException:
            pass
        traceback.print_exception(type(exc), exc, tb)
        return 1, flags

def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:
            pass

def _main():
    mode = sys.argv[1]
    cpu, mem, nproc, fsize, status_fd, reply_fd = (int(a) for a in sys.argv[2:8])
    for fd in (status_fd, reply_fd):
        os.set_inheritable(fd, False)
    os.set_blocking(status_fd, False)
    if mode == "once":
        # As pid 1 it would ignore SIGXCPU (the kernel spares a namespace's init signals it has no
        # handler for); the hard limit (soft + 1 s) SIGKILLs it if the handler cannot run.
        _signal.signal(_signal.SIGXCPU, _cpu_exceeded)
        _signal.set_wakeup_fd(status_fd, warn_on_full_buffer=False)
    requests = os.dup(0)  # not inheritable: the code's subprocesses never see it
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = open(0, closefd=False)
    limits = [(resource.RLIMIT_AS, (mem, mem)), (resource.RLIMIT_NPROC, (nproc, nproc)),
              (resource.RLIMIT_FSIZE, (fsize, fsize)), (resource.RLIMIT_CORE, (0, 0))]
    if mode == "once":
        limits.append((resource.RLIMIT_CPU, (cpu, cpu + 1)))
    for res, value in limits:
        resource.setrlimit(res, value)
    module = type(sys)("__main__")
    module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = module
    sources = {}
    _reply(reply_fd, b"REDY", 0, 0, 0)
    n = 0
    while True:
        header = _read_exact(requests, 12)
        exec_id = int.from_bytes(header[:8], "big")
        source = _read_exact(requests, int.from_bytes(header[8:], "big")).decode("utf-8", "replace")
        n += 1
        filename = "<code>" if n == 1 else f"<code {n}>"
        sources[filename] = source
        import linecache  # cheap (no tokenize until used); lets inspect and tracebacks show the code
        linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
        sys.argv = [filename]
        status, flags = _run(source, filename, module, sources)
        if os.getpid() != 1:  # a child the code forked without exiting: it must not become a runner
            _flush()
            os._exit(status & 0xFF)
        if flags:
            try:
                os.write(status_fd, b"M")
            except OSError:
                pass
        if mode == "once":
            _flush()
            _reply(reply_fd, b"DONE", exec_id, status, flags)
            if status:
                os._exit(status & 0xFF)
            return
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None:
            try:
                plt.close("all")
            except BaseException:
                pass
        _flush()
        _reply(reply_fd, b"DONE", exec_id, status, flags)

_main()
"""
