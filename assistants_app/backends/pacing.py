"""Reading a streaming reply's body at most once per interval (UPSTREAM_READ_INTERVAL_MS).

A model server writes each token as its own small HTTP chunk. Read as they come, every token costs
this server a wake-up of the task that reads the reply, a parse, an event and a write to each
reader's socket. So once a reply's text flows, the backend waits for the next tick before it asks
for more of the body: the tokens that arrived meanwhile are taken in one read, parsed together and
reach the readers as one write. The first text is never delayed, and a token waits at most one
interval.

Waiting in the reader works because the body comes from aiohttp (client.py): its connection's
protocol takes in what the socket delivers and keeps it, decoded from the chunked encoding by
aiohttp's C parser, and one read hands over everything kept so far. (httpx's HTTP/1.1 stack gave
one HTTP chunk per read, so it had to be paced below, in its network stream.)

Every paced reply of an event loop reads on the same ticks: multiples of the interval on the loop's
clock, one timer per tick for all of them. With reads spaced per reply from its own first text, 50
replies meant up to 500 separate wake-ups a second at a 100 ms interval; on the shared grid the loop
wakes once per tick and finds every reply's data ready in the same step.
"""

from __future__ import annotations

import asyncio
import math
import weakref

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
