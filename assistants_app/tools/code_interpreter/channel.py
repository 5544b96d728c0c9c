"""The server's ends of a sandbox's pipes: the code's output, the runner's replies, the runner's
status bytes and bwrap's JSON status (see runner.py for the frames)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable

from . import runner, streams

_CHUNK = 65536
_READS_PER_WAKEUP = 16  # then the event loop gets a turn; the reader fires again
_MAX_JUNK_FRAMES = 64


class Channel:
    """Create, hand `child_ends()` to the process, then `start()`; `close()` at the end."""

    def __init__(self, on_junk: Callable[[], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_junk = on_junk
        self._fds: list[int] = []  # our ends, closed by close()
        self._readers: list[int] = []
        self.status_r, self.status_w = self._pipe()
        self.json_r, self.json_w = self._pipe()
        self.reply_r, self.reply_w = self._pipe()
        self.out_r, self.out_w = self._pipe()
        # Where the code's output goes: the running execution's buffer (None: dropped).
        self.sink: streams.OutputBuffer | None = None
        self.out_eof = asyncio.Event()
        self.ready: asyncio.Future[None] = self._loop.create_future()
        # The running execution's request id, and the future its DONE frame resolves.
        self.pending: tuple[int, asyncio.Future[tuple[int, int]]] | None = None
        self._reply_buf = bytearray()
        self._junk = 0
        self._bwrap_status = ""

    def _pipe(self) -> tuple[int, int]:
        r, w = os.pipe()
        self._fds.append(r)
        return r, w

    def child_ends(self) -> list[int]:
        """The write ends, for the child only: the caller closes them once it is started."""
        return [self.status_w, self.json_w, self.reply_w, self.out_w]

    def start(self) -> None:
        for fd, callback in ((self.out_r, self._on_output), (self.reply_r, self._on_reply)):
            os.set_blocking(fd, False)
            self._loop.add_reader(fd, callback)
            self._readers.append(fd)

    def read_output(self, reads: int = _READS_PER_WAKEUP) -> None:
        """Move up to `reads` chunks from the output pipe to the sink (sets out_eof at EOF)."""
        for _ in range(reads):
            try:
                chunk = os.read(self.out_r, _CHUNK)
            except BlockingIOError:
                return
            except OSError:
                chunk = b""
            if not chunk:
                self._stop_reading(self.out_r)
                self.out_eof.set()
                return
            if self.sink is not None:
                self.sink.add(chunk)  # between executions (frozen) there is nothing; else dropped

    def _on_output(self) -> None:
        self.read_output()

    def _on_reply(self) -> None:
        try:
            data = os.read(self.reply_r, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stop_reading(self.reply_r)
            return
        self._reply_buf += data
        while len(self._reply_buf) >= runner.REPLY_SIZE:
            frame = bytes(self._reply_buf[: runner.REPLY_SIZE])
            del self._reply_buf[: runner.REPLY_SIZE]
            self._on_frame(*runner.parse_reply(frame))

    def _on_frame(self, tag: bytes, exec_id: int, status: int, flags: int) -> None:
        if tag == runner.TAG_READY and not self.ready.done():
            self.ready.set_result(None)
            return
        pending = self.pending
        if tag == runner.TAG_DONE and pending is not None and pending[0] == exec_id and not pending[1].done():
            pending[1].set_result((status, flags))
            return
        # Only the code itself can write anything else (it shares the runner's process).
        self._junk += 1
        if self._junk > _MAX_JUNK_FRAMES:
            self._on_junk()

    def _stop_reading(self, fd: int) -> None:
        if fd in self._readers:
            self._readers.remove(fd)
            self._loop.remove_reader(fd)

    def status(self) -> bytes:
        """The runner's status bytes since the last call."""
        return streams.read_available(self.status_r)

    def bwrap_status(self) -> str:
        """bwrap's --json-status-fd output so far (child-pid, then exit-code)."""
        self._bwrap_status += streams.read_available(self.json_r).decode(errors="replace")
        return self._bwrap_status

    def close(self) -> None:
        for fd in list(self._readers):
            self._stop_reading(fd)
        for fd in self._fds:
            os.close(fd)
        self._fds.clear()
