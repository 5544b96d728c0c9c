"""backends/pacing.py: once text flows, a reply's body is read at most once per interval, so the
tokens that arrived meanwhile come in with one read (one wake-up, one parse, one write per reader)."""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

import aiohttp
import pytest
from aiohttp.client_proto import ResponseHandler

from assistants_app.backends import client as client_module
from assistants_app.backends import openai_compat, pacing
from assistants_app.backends.base import ChatRequest, TextDelta
from assistants_app.backends.openai_compat import OpenAICompatBackend
from tests.fakes.upstream import FakeUpstream, text

REQUEST = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])


async def test_replies_paced_at_different_moments_wake_on_the_same_ticks() -> None:
    """One wake-up per tick for every paced reply of the loop, not one per reply."""
    loop = asyncio.get_running_loop()
    woke: list[list[float]] = [[], [], []]

    async def reads(i: int) -> None:
        await asyncio.sleep(i * 0.01)
        for _ in range(3):
            await pacing.wait_for_next_tick(0.05)
            woke[i].append(loop.time())

    await pacing.wait_for_next_tick(0.05)  # start just after a tick: all three begin before the next
    await asyncio.gather(*(reads(i) for i in range(3)))
    first, *others = woke
    for other in others:
        assert [round(a - b, 3) for a, b in zip(first, other, strict=True)] == [0.0] * 3
    assert all(b - a >= 0.045 for a, b in itertools.pairwise(first))
    assert not pacing._TICKS.get(loop)  # a fired tick is forgotten


async def test_a_cancelled_wait_leaves_the_others_on_the_tick() -> None:
    deadline = pacing.next_tick(asyncio.get_running_loop().time(), 0.05)
    first = asyncio.ensure_future(pacing.sleep_until_tick(deadline))
    second = asyncio.ensure_future(pacing.sleep_until_tick(deadline))
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.wait_for(second, 1)
    assert first.cancelled()


async def _arrivals(
    backend: OpenAICompatBackend, order: list[str] | None = None
) -> tuple[float, list[tuple[float, str]]]:
    loop = asyncio.get_running_loop()
    asked = loop.time()
    out = []
    async for ev in backend.stream(REQUEST):
        if isinstance(ev, TextDelta):
            out.append((loop.time(), ev.text))
            if order is not None:
                order.append("text")
    return asked, out


def _count_socket_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    reads: list[int] = []
    data_received = ResponseHandler.data_received

    def counted(self: ResponseHandler, data: bytes) -> None:
        if data:  # b"" is aiohttp resuming its parser, not a read of the socket
            reads.append(len(data))
        data_received(self, data)

    monkeypatch.setattr(ResponseHandler, "data_received", counted)
    return reads


async def test_a_reply_is_read_once_per_interval_its_first_text_at_once(
    up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads = _count_socket_reads(monkeypatch)
    order: list[str] = []
    hold = pacing.hold

    async def recorded_hold(*args: Any) -> None:
        order.append("hold")
        await hold(*args)

    monkeypatch.setattr(openai_compat, "hold", recorded_hold)
    chunks = [f"t{i} " for i in range(30)]
    up.script(text(*chunks, delay=0.01), text("again", delay=0.01))
    backend = OpenAICompatBackend(up.base_url, "k", connect_timeout=2.0, stall_timeout=5.0, read_interval=0.1)
    _, arrivals = await _arrivals(backend, order)
    assert "".join(t for _, t in arrivals) == "".join(chunks)  # nothing lost, in order
    assert order[0] == "text"  # the first text is never held: no wait for a tick before it
    # 30 chunks over ~0.3 s: with one read per 0.1 s, a handful of reads carry them, each relayed as
    # one delta; and the socket itself is read once per tick (paused between), not once per chunk.
    assert len(arrivals) <= 6, arrivals
    assert len(reads) <= 10, reads
    # The next reply on the same backend starts unpaced: its first text is not held either.
    order.clear()
    _, arrivals = await _arrivals(backend, order)
    assert [t for _, t in arrivals] == ["again"] and order[0] == "text"


async def test_a_body_received_whole_before_it_is_read_is_not_paused(up: FakeUpstream) -> None:
    """aiohttp may have all of a body (and have given its connection back to the pool) while the
    backend has read only part of it: e.g. a body larger than one read, sent at once."""
    chunks = ["x" * 100 + " " for _ in range(600)]  # ~100 KB of events, all at once
    up.script(text(*chunks), text("next"))
    backend = OpenAICompatBackend(
        up.base_url, "k", connect_timeout=2.0, stall_timeout=5.0, read_interval=0.02
    )
    _, arrivals = await _arrivals(backend)
    assert "".join(t for _, t in arrivals) == "".join(chunks)
    _, arrivals = await _arrivals(backend)  # the pooled connection was left unpaused
    assert [t for _, t in arrivals] == ["next"]


async def test_no_interval_no_pacing(up: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> None:
    reads = _count_socket_reads(monkeypatch)
    chunks = [f"t{i} " for i in range(10)]
    up.script(text(*chunks, delay=0.01))
    backend = OpenAICompatBackend(up.base_url, "k", connect_timeout=2.0, stall_timeout=5.0, read_interval=0)
    _, arrivals = await _arrivals(backend)
    assert len(arrivals) >= 8  # a delta per chunk, as they come
    assert len(reads) >= 8


async def test_the_shared_client_speaks_http_through_aiohttp(up: FakeUpstream) -> None:
    up.script(text("hello", " world", delay=0.2))  # still streaming when looked at
    client = client_module.build_client(up.base_url, "k")
    async with client.chat.completions.with_streaming_response.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as response:
        aio = pacing.aiohttp_response_of(response.http_response)  # whose protocol `hold` pauses
        assert aio is not None and aio.connection is not None
        body = b"".join([chunk async for chunk in response.iter_bytes()])
    assert b"hello" in body
    session = client._client._transport.client  # type: ignore[attr-defined]
    assert isinstance(session, aiohttp.ClientSession)
    await client_module.close_clients()
    assert session.closed  # closing the cached clients closes aiohttp's session and its sockets
