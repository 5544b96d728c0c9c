"""Reading a streaming reply's body at most once per interval (UPSTREAM_READ_INTERVAL_MS).

A model server writes each token as its own small HTTP chunk. Read as they come, every token costs
this server a wake-up on the upstream socket, a parse, an event and a write to each reader's socket,
and on these machines a wake-up alone costs more CPU than everything else a token needs. So once a
reply's text flows, its connection is read at most once per interval: the tokens that arrived
meanwhile wait in the kernel's socket buffer, come in with one read, are parsed together and reach
the readers as one write. The first text is never delayed, and a token waits at most one interval.

The body comes from aiohttp (client.py), whose connection protocol reads the socket whenever it is
readable. Between two ticks `hold` pauses that protocol (aiohttp's own flow control, which takes
the socket out of the event loop's selector), and resumes it on the tick; aiohttp's C parser then
decodes everything the socket had, and the next read of the body hands it all over at once.

Every paced reply of an event loop reads on the same ticks: multiples of the interval on the loop's
clock, one timer per tick for all of them. With reads spaced per reply from its own first text, 50
replies meant up to 500 separate wake-ups a second at a 100 ms interval; on the shared grid the loop
wakes once per tick and finds every reply's socket ready in the same step.
"""

from __future__ import annotations

import asyncio
import math
import weakref

import aiohttp
import httpx2
from aiohttp.client_proto import ResponseHandler

# Per event loop, the tick deadlines someone waits for, each with the one event its timer sets.
_TICKS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[float, asyncio.Event]] = (
    weakref.WeakKeyDictionary()
)


def next_tick(now: float, interval: float) -> float:
    """The first multiple of `interval` after `now`: the same float for every reply of a tick."""
    return (math.floor(now / interval) + 1) * interval


async def sleep_until_tick(deadline: float) -> None:
    loop = asyncio.get_running_loop()
    ticks = _TICKS.setdefault(loop, {})
    event = ticks.get(deadline)
    if event is None:
        event = ticks[deadline] = asyncio.Event()
        loop.call_at(deadline, _fire, ticks, deadline, event)
    # Each waiter waits on its own future inside the event: a cancelled wait leaves the others be.
    await event.wait()


async def wait_for_next_tick(interval: float) -> None:
    """Sleep until the next multiple of `interval` seconds on the running loop's clock."""
    await sleep_until_tick(next_tick(asyncio.get_running_loop().time(), interval))


def _fire(ticks: dict[float, asyncio.Event], deadline: float, event: asyncio.Event) -> None:
    ticks.pop(deadline, None)
    event.set()


def aiohttp_response_of(response: httpx2.Response) -> aiohttp.ClientResponse | None:
    """The aiohttp response under `response`, if the SDK's aiohttp transport made it (httpx wraps
    the transport's stream; the SDK's stream keeps aiohttp's response)."""
    stream = getattr(response.stream, "_stream", response.stream)
    aio = getattr(stream, "_aiohttp_response", None)
    return aio if isinstance(aio, aiohttp.ClientResponse) else None


async def hold(aio: aiohttp.ClientResponse | None, interval: float) -> None:
    """Until the next tick, leave what arrives for `aio`'s body in the socket's buffer.

    Only while the body is still coming: once aiohttp has received all of it, the response gives
    its connection back to the pool (`connection` is then None), and that protocol is no longer
    this response's to pause."""
    connection = aio.connection if aio is not None else None
    protocol = connection.protocol if connection is not None else None
    if not isinstance(protocol, ResponseHandler) or not protocol.connected:
        await wait_for_next_tick(interval)
        return
    protocol.pause_reading()
    try:
        await wait_for_next_tick(interval)
    finally:
        # Paused, it received nothing meanwhile, so the body cannot have ended and the connection
        # is still this response's, unless it was closed.
        if protocol.connected:
            protocol.resume_reading()
