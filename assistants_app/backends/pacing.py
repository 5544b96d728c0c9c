"""Reading a streaming reply's socket at most once per interval (UPSTREAM_READ_INTERVAL_MS).

A model server writes each token as its own small HTTP chunk. Read as they come, every token costs
this server a wake-up on the upstream socket, a parse, an event and a write to each reader's socket,
and on these machines a wake-up alone costs more CPU than everything else a token needs. So once a
reply's text flows, its connection is read at most once per interval: the tokens that arrived
meanwhile wait in the kernel's socket buffer and come in with one read, are parsed together and
reach the readers as one write.

This is done below httpx, in the network stream that the connection pool reads (httpcore's
pluggable network backend), not by sleeping in the consumer: a consumer can only ask for the next
chunk, so it cannot tell "the buffer is drained" from "wait for the network", and would wake up once
per token anyway. The backend turns pacing on for one response's connection after the first text
(which is never delayed) and off when the response ends, so a connection back in the pool is never
paced for the next request.

Every paced stream of an event loop reads on the same ticks: multiples of the interval on the loop's
clock, one timer per tick for all of them. With reads spaced per stream from its own first text,
50 streams meant up to 500 separate wake-ups a second at a 100 ms interval; on the shared grid the
loop wakes once per tick and finds every stream's socket ready in the same step. A token still
waits at most one interval.

A read goes straight to the anyio byte stream under httpcore's AnyIOStream, with asyncio's own
timeout: httpcore's read enters anyio's `fail_after` scope and an exception map per call, which
cost more of the server's CPU than the receive itself (6.7% of the chat server's GIL samples at 50
streams, the receive 3%). Errors are mapped as httpcore maps them.
"""

# The `timeout` parameters are httpcore's network-stream interface, passed through as they are.
# ruff: noqa: ASYNC109
from __future__ import annotations

import asyncio
import math
import ssl
import weakref
from collections.abc import Iterable
from typing import Any

import anyio
import anyio.abc
import httpcore2
import httpx2
from httpcore2._backends.anyio import AnyIOStream

# Per event loop, the tick deadlines someone waits for, each with the one event its timer sets.
_TICKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, asyncio.Event]] = (
    weakref.WeakKeyDictionary()
)


def next_tick(now: float, interval: float) -> float:
    """The first multiple of `interval` after `now`: the same float for every stream of a tick."""
    return (math.floor(now / interval) + 1) * interval


async def sleep_until_tick(deadline: float) -> None:
    loop = asyncio.get_running_loop()
    ticks = _TICKS.setdefault(loop, {})
    event = ticks.get(deadline)
    if event is None:
        event = ticks[deadline] = asyncio.Event()
        loop.call_at(deadline, _fire, ticks, deadline, event)
    # Each waiter waits on its own future inside the event: a cancelled read leaves the others be.
    await event.wait()


def _fire(ticks: dict[float, asyncio.Event], deadline: float, event: asyncio.Event) -> None:
    ticks.pop(deadline, None)
    event.set()


class PacedStream(httpcore2.AsyncNetworkStream):
    """A network stream whose reads can be spaced on the loop's ticks: `pace(interval)` until
    `unpace()`."""

    def __init__(self, inner: httpcore2.AsyncNetworkStream) -> None:
        self._inner = inner
        self._interval = 0.0
        self._next_read = 0.0  # event-loop time before which no read goes to the socket
        byte_stream = getattr(inner, "_stream", None) if type(inner) is AnyIOStream else None
        self._byte_stream = byte_stream if isinstance(byte_stream, anyio.abc.ByteStream) else None

    def pace(self, interval: float) -> None:
        """From now on, read the socket once per tick of `interval` seconds (0: as data comes)."""
        self._interval = max(0.0, interval)
        if self._interval:
            self._next_read = next_tick(asyncio.get_running_loop().time(), self._interval)

    def unpace(self) -> None:
        self._interval = 0.0
        self._next_read = 0.0

    @property
    def paced(self) -> bool:
        return self._interval > 0

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        if self._interval and self._next_read > asyncio.get_running_loop().time():
            await sleep_until_tick(self._next_read)
        data = await self._receive(max_bytes, timeout)
        if self._interval:
            self._next_read = next_tick(asyncio.get_running_loop().time(), self._interval)
        return data

    async def _receive(self, max_bytes: int, timeout: float | None) -> bytes:
        """`AnyIOStream.read` without its per-call anyio scope (the module's docstring says why)."""
        stream = self._byte_stream
        if stream is None:
            return await self._inner.read(max_bytes, timeout)
        try:
            async with asyncio.timeout(timeout):  # None: no deadline, no timer
                return await stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except TimeoutError as exc:
            raise httpcore2.ReadTimeout(exc) from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError) as exc:
            raise httpcore2.ReadError(exc) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore2.AsyncNetworkStream:
        return PacedStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class PacedBackend(httpcore2.AsyncNetworkBackend):
    """The connection pool's network backend, handing out PacedStreams (unpaced until told)."""

    def __init__(self, inner: httpcore2.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore2.AsyncNetworkStream:
        return PacedStream(await self._inner.connect_tcp(host, port, timeout, local_address, socket_options))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore2.AsyncNetworkStream:
        return PacedStream(await self._inner.connect_unix_socket(path, timeout, socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def paced_transport(**kwargs: Any) -> httpx2.AsyncHTTPTransport:
    """httpx's own transport, its pool reading through PacedBackend. (httpx does not take a network
    backend as an argument; its pool does, and keeps it in `_network_backend`.)"""
    transport = httpx2.AsyncHTTPTransport(**kwargs)
    pool = transport._pool
    inner = getattr(pool, "_network_backend", None)
    if not isinstance(inner, httpcore2.AsyncNetworkBackend):
        raise RuntimeError(f"httpcore2's pool changed: no _network_backend on {type(pool).__name__}")
    pool._network_backend = PacedBackend(inner)
    return transport


def stream_of(response: httpx2.Response) -> PacedStream | None:
    """The PacedStream a response is read from, if it is one (httpcore names it in the extensions)."""
    stream = response.extensions.get("network_stream")
    return stream if isinstance(stream, PacedStream) else None
