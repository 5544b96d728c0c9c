"""backends/pacing.py: once text flows, a reply's connection is read at most once per interval, so the
tokens that arrived meanwhile come in with one read (one wake-up, one parse, one write per reader)."""

from __future__ import annotations

import asyncio
from typing import Any

import anyio
import httpcore2
import pytest

from assistants_app.backends import client as client_module
from assistants_app.backends import pacing
from assistants_app.backends.base import ChatRequest, TextDelta
from assistants_app.backends.openai_compat import OpenAICompatBackend
from tests.fakes.upstream import FakeUpstream, text

REQUEST = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])


class _Inner(httpcore2.AsyncNetworkStream):
    def __init__(self) -> None:
        self.reads: list[float] = []

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        self.reads.append(asyncio.get_running_loop().time())
        return b"x"

    async def start_tls(self, ssl_context: Any, server_hostname: Any = None, timeout: Any = None) -> Any:  # noqa: ASYNC109
        return _Inner()


async def test_a_paced_stream_spaces_its_reads_until_unpaced() -> None:
    inner = _Inner()
    stream = pacing.PacedStream(inner)
    loop = asyncio.get_running_loop()
    for _ in range(3):
        await stream.read(100)
    assert inner.reads[-1] - inner.reads[0] < 0.03  # unpaced: as fast as asked
    paced_at = loop.time()
    stream.pace(0.05)
    for _ in range(3):
        await stream.read(100)
    first, *rest = inner.reads[3:]
    assert first >= pacing.next_tick(paced_at, 0.05) - 0.001  # the first paced read waits for a tick
    assert all(b - a >= 0.045 for a, b in zip([first, *rest], rest, strict=False))
    stream.unpace()
    t = loop.time()
    await stream.read(100)
    assert inner.reads[-1] - t < 0.03
    assert isinstance(await stream.start_tls(None), pacing.PacedStream)  # type: ignore[arg-type]


async def test_paced_streams_read_on_the_same_ticks() -> None:
    """Streams paced at different moments read together: one wake-up per tick for all of them, not
    one per stream."""
    loop = asyncio.get_running_loop()
    inners = [_Inner() for _ in range(3)]
    streams = [pacing.PacedStream(inner) for inner in inners]

    async def reads(stream: pacing.PacedStream, offset: float) -> None:
        await asyncio.sleep(offset)
        stream.pace(0.05)
        for _ in range(3):
            await stream.read(100)

    await asyncio.gather(*(reads(s, i * 0.015) for i, s in enumerate(streams)))
    first, *others = inners
    for other in others:
        assert [round(a - b, 3) for a, b in zip(first.reads, other.reads, strict=True)] == [0.0] * 3
    assert not pacing._TICKS.get(loop)  # a fired tick is forgotten


async def test_a_cancelled_read_leaves_the_others_on_the_tick() -> None:
    a, b = pacing.PacedStream(_Inner()), pacing.PacedStream(_Inner())
    a.pace(0.05)
    b.pace(0.05)
    first = asyncio.ensure_future(a.read(100))
    second = asyncio.ensure_future(b.read(100))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == b"x"
    assert first.cancelled()


async def _arrivals(backend: OpenAICompatBackend) -> tuple[float, list[tuple[float, str]]]:
    loop = asyncio.get_running_loop()
    asked = loop.time()
    out = [(loop.time(), ev.text) async for ev in backend.stream(REQUEST) if isinstance(ev, TextDelta)]
    return asked, out


async def test_a_reply_is_read_once_per_interval_its_first_text_at_once(up: FakeUpstream) -> None:
    chunks = [f"t{i} " for i in range(30)]
    up.script(text(*chunks, delay=0.01), text("again", delay=0.01))
    backend = OpenAICompatBackend(up.base_url, "k", connect_timeout=2.0, stall_timeout=5.0, read_interval=0.1)
    asked, arrivals = await _arrivals(backend)
    assert "".join(t for _, t in arrivals) == "".join(chunks)  # nothing lost, in order
    assert arrivals[0][0] - asked < 0.09  # the first text is never held
    # 30 chunks over ~0.3 s: with one read per 0.1 s, a handful of reads carry them (a delta per
    # HTTP chunk of a read, all relayed in the same step), not one wake-up per chunk.
    reads = {round(t, 2) for t, _ in arrivals[1:]}
    assert len(reads) <= 6, sorted(reads)
    # The connection went back to the pool unpaced: the next reply's first text is not held.
    asked, arrivals = await _arrivals(backend)
    assert [t for _, t in arrivals] and arrivals[0][0] - asked < 0.09


async def test_the_shared_client_reads_through_paced_streams(up: FakeUpstream) -> None:
    up.script(text("hello"))
    client = client_module.build_client(up.base_url, "k")
    async with client.chat.completions.with_streaming_response.create(
        model="m", messages=[{"role": "user", "content": "hi"}], stream=True
    ) as response:
        assert pacing.stream_of(response.http_response) is not None
        async for _ in response.iter_bytes():
            pass


async def test_no_interval_no_pacing(up: FakeUpstream) -> None:
    chunks = [f"t{i} " for i in range(10)]
    up.script(text(*chunks, delay=0.01))
    backend = OpenAICompatBackend(up.base_url, "k", connect_timeout=2.0, stall_timeout=5.0, read_interval=0)
    _, arrivals = await _arrivals(backend)
    assert len(arrivals) >= 8  # a delta per chunk, as they come


async def test_reads_go_to_the_byte_stream_with_httpcores_errors(monkeypatch) -> None:
    """A read on httpcore's anyio stream skips its per-read `fail_after` scope (most of a paced
    read's CPU) and still times out and ends as httpcore's own read does."""
    accepted: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await accepted.put(writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    inner = await httpcore2.AnyIOBackend().connect_tcp("127.0.0.1", port, timeout=5)
    stream = pacing.PacedStream(inner)
    writer = await accepted.get()

    def no_scope(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the read entered anyio's fail_after")

    monkeypatch.setattr(anyio, "fail_after", no_scope)
    writer.write(b"hello")
    await writer.drain()
    assert await stream.read(100, timeout=5) == b"hello"
    with pytest.raises(httpcore2.ReadTimeout):
        await stream.read(100, timeout=0.05)
    writer.write(b"after the timeout")  # a timed-out read loses nothing that comes later
    await writer.drain()
    assert await stream.read(100, timeout=5) == b"after the timeout"
    writer.close()
    assert await stream.read(100, timeout=5) == b""  # the peer closed: the end of the stream
    await stream.aclose()
    with pytest.raises(httpcore2.ReadError):
        await stream.read(100)
    server.close()
    await server.wait_closed()
