"""The sandbox process from the server's side: its output, its stdin, and killing it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal


def read_available(fd: int) -> bytes:
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


class OutputBuffer:
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


async def pump(stream: asyncio.StreamReader, out: OutputBuffer) -> None:
    while chunk := await stream.read(65536):
        out.add(chunk)


async def feed(stdin: asyncio.StreamWriter, data: bytes) -> None:
    with contextlib.suppress(ConnectionError):  # the code may exit before reading everything
        stdin.write(data)
        await stdin.drain()
        stdin.close()
        await stdin.wait_closed()


def kill(proc: asyncio.subprocess.Process, bwrap_status: str) -> None:
    """SIGKILL the sandbox's pid 1, which takes every process of its pid namespace with it.

    Killing the sandbox's pid 1 rather than bwrap lets bwrap reap it and exit normally: were bwrap
    killed first (--die-with-parent then kills pid 1), pid 1 would be re-parented to the host's
    init, which in some containers never reaps, and stay a zombie. bwrap is the fallback.
    """
    child = json_field(bwrap_status, "child-pid")
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


def json_field(bwrap_status: str, name: str) -> int | None:
    """A field of bwrap's --json-status-fd stream (one JSON object per line): child-pid, exit-code."""
    for line in bwrap_status.splitlines():
        with contextlib.suppress(ValueError, TypeError):
            doc = json.loads(line)
            if isinstance(doc, dict) and name in doc:
                return int(doc[name])
    return None
