"""The backend's own SSE reading: framing edge cases, chunk shapes, and what a broken body does.

Unit tests drive `SSEDecoder` directly; the rest send hand-written SSE bodies over real HTTP (the fake
upstream's socket, httpx and the SDK's request path in between), byte for byte as a server could.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from assistants_app.backends import openai_compat, pacing
from assistants_app.backends.base import (
    BackendError,
    ChatRequest,
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from assistants_app.backends.openai_compat import OpenAICompatBackend
from assistants_app.backends.openai_stream import ChunkMapper, SSEDecoder, decode_data, merge_text
from tests.fakes.upstream import FakeUpstream, Reply, text


def chunk(content: str | None = None, *, finish: str | None = None, **delta: Any) -> str:
    if content is not None:
        delta["content"] = content
    return json.dumps(
        {
            "id": "chatcmpl-raw",
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
    )


def usage_chunk(prompt: int, completion: int) -> str:
    return json.dumps(
        {
            "id": "chatcmpl-raw",
            "choices": [],
            "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
        }
    )


def sse(*datas: str, end: str = "\n") -> bytes:
    """Events of one `data:` line each, with the given line ending."""
    return "".join(f"data: {d}{end}{end}" for d in datas).encode()


@dataclass(frozen=True)
class Raw(Reply):
    """Send `body` verbatim as the SSE response, cut into HTTP chunks of `piece` bytes (each its own
    read for the client), optionally gzip-encoded; `drop` closes the socket without ending the body."""

    body: bytes
    piece: int = 0
    drop: bool = False
    gzip: bool = False
    peers: list[Any] = field(default_factory=list)  # the client address of each request served

    def serve(self, h: Any, body: dict[str, Any]) -> None:
        self.peers.append(h.connection.getpeername())
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        if self.gzip:
            h.send_header("Content-Encoding", "gzip")
        h.end_headers()
        payload = gzip.compress(self.body) if self.gzip else self.body
        size = self.piece or len(payload) or 1
        for i in range(0, len(payload), size):
            if not h.send_chunk(payload[i : i + size]):
                return
        if self.drop:
            h.wfile.flush()
            h.close_connection = True
            return
        h.end_chunks()


def backend(up: FakeUpstream, max_retries: int = 2) -> OpenAICompatBackend:
    return OpenAICompatBackend(
        up.base_url, "k", connect_timeout=2.0, stall_timeout=5.0, max_retries=max_retries, retry_base=0.01
    )


REQUEST = ChatRequest(model="m", messages=[{"role": "user", "content": "hi"}])


async def collect(up: FakeUpstream, *replies: Reply, max_retries: int = 2) -> list[StreamEvent]:
    """The events, consecutive text deltas joined: how many deltas carry a text depends on how the
    bytes were read (one read's text is one delta), which these tests do not control."""
    up.script(*replies)
    return merge_text([e async for e in backend(up, max_retries).stream(REQUEST)])


def feed_all(pieces: Sequence[bytes]) -> list[tuple[str | None, bytes]]:
    decoder = SSEDecoder()
    return [event for piece in pieces for event in decoder.feed(piece)]


# --------------------------------------------------------------------------------------------------
# SSEDecoder


def test_decoder_joins_multi_line_data_and_keeps_the_event_name() -> None:
    body = b'event: delta\ndata: {"a":\ndata:  1}\n\ndata: x\n\n'
    assert feed_all([body]) == [("delta", b'{"a":\n 1}'), (None, b"x")]


@pytest.mark.parametrize("end", ["\n", "\r\n", "\r"])
def test_decoder_accepts_every_line_ending(end: str) -> None:
    body = (
        f": keep-alive{end}id: 7{end}retry: 1000{end}data: one{end}data: two{end}{end}data{end}{end}".encode()
    )
    assert feed_all([body]) == [(None, b"one\ntwo"), (None, b"")]


def test_decoder_gives_the_same_events_whatever_the_reads() -> None:
    body = b': ping\r\n\r\nevent: e\r\ndata: {"x": 1}\r\ndata: more\r\n\r\ndata: [DONE]\n\n'
    whole = feed_all([body])
    assert whole == [("e", b'{"x": 1}\nmore'), (None, b"[DONE]")]
    for cut in range(1, len(body)):
        assert feed_all([body[:cut], body[cut:]]) == whole, cut
    assert feed_all([body[i : i + 1] for i in range(len(body))]) == whole


def test_decoder_does_not_double_a_crlf_split_across_reads() -> None:
    # If the LF after a split CR were a second line end, "a" and "b" would be two events.
    assert feed_all([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [(None, b"a\nb")]


def test_decoder_drops_an_unterminated_event_and_ignores_blank_lines() -> None:
    assert feed_all([b"\n\n\ndata: complete\n\ndata: cut off"]) == [(None, b"complete")]


# --------------------------------------------------------------------------------------------------
# Chunk JSON


def test_decode_data_reports_error_objects_and_error_events() -> None:
    with pytest.raises(BackendError, match="reported an error mid-stream: overloaded"):
        decode_data(None, b'{"error": {"message": "overloaded", "type": "server_error"}}')
    with pytest.raises(BackendError, match="mid-stream: upstream exploded"):
        decode_data("error", b"upstream exploded")
    with pytest.raises(BackendError, match="mid-stream: An error occurred during streaming"):
        decode_data(None, b'{"error": {"code": 500}}')
    with pytest.raises(BackendError, match="invalid JSON"):
        decode_data(None, b'{"choices": [')
    with pytest.raises(BackendError, match="invalid JSON"):
        decode_data(None, b'{"choices": [], "x": "\xff"}')  # not UTF-8
    assert decode_data(None, b'{"choices": [], "error": null}') == {"choices": [], "error": None}


@pytest.mark.parametrize(
    "bad",
    [
        [1, 2],
        {"choices": [1]},
        {"choices": [{"delta": "text"}]},
        {"choices": [{"delta": {"content": 5}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": 0, "function": "f"}]}}]},
        {"choices": [{"delta": {"tool_calls": ["x"]}}]},
        {"choices": [{"delta": {"tool_calls": [{"index": "0"}]}}]},
        {"choices": [{"finish_reason": 1}]},
        {"choices": [], "usage": "lots"},
        {"choices": [], "usage": {"prompt_tokens": "1", "completion_tokens": 2}},
    ],
)
def test_mapper_rejects_wrong_shapes(bad: Any) -> None:
    with pytest.raises(BackendError, match="malformed"):
        ChunkMapper().feed(bad)


def test_mapper_maps_text_tool_calls_usage_and_finish() -> None:
    mapper = ChunkMapper()
    events = [
        *mapper.feed(json.loads(chunk("", role="assistant"))),
        *mapper.feed(json.loads(chunk("Hi"))),
        *mapper.feed({"choices": [{"delta": {"tool_calls": [{"id": "call_1", "function": {"name": "f"}}]}}]}),
        *mapper.feed({"choices": [{"delta": {"tool_calls": [{"function": {"arguments": "{}"}}]}}]}),
        *mapper.feed(
            {"choices": [{"delta": {"tool_calls": [{"index": 1, "id": "call_2", "function": None}]}}]}
        ),
        *mapper.feed({"choices": [{"delta": {}, "finish_reason": "eos"}], "usage": None}),
        *mapper.feed(json.loads(usage_chunk(3, 4))),
    ]
    assert events == [
        TextDelta("Hi"),
        ToolCallDelta(0, "call_1", "f", None),
        ToolCallDelta(0, None, None, "{}"),
        ToolCallDelta(1, "call_2", None, None),
    ]
    assert mapper.finish == "stop"
    assert mapper.tail(mapper.finish) == [Usage(3, 4), Finish("tool_calls")]


# --------------------------------------------------------------------------------------------------
# Over HTTP


EXPECTED = [TextDelta("Hello"), Usage(5, 2), Finish("stop")]


async def test_crlf_keep_alives_and_multi_line_data_over_http(up: FakeUpstream) -> None:
    pretty = json.dumps(json.loads(chunk("lo")), indent=1).replace("\n", "\r\ndata: ")
    body = (
        b": keep-alive\r\n\r\n"
        + sse(chunk("", role="assistant"), chunk("Hel"), end="\r\n")
        + b": still here\r\n\r\nevent: completion\r\n"
        + f"data: {pretty}\r\n\r\n".encode()
        + sse(chunk(finish="stop"), usage_chunk(5, 2), "[DONE]", end="\r\n")
    )
    assert await collect(up, Raw(body)) == EXPECTED


@pytest.mark.parametrize("piece", [1, 3, 17])
async def test_chunks_split_across_reads(up: FakeUpstream, piece: int) -> None:
    body = sse(
        chunk("", role="assistant"),
        chunk("Hel"),
        chunk("lo"),
        chunk(finish="stop"),
        usage_chunk(5, 2),
        "[DONE]",
    )
    assert await collect(up, Raw(body, piece=piece)) == EXPECTED


async def test_gzip_encoded_stream(up: FakeUpstream) -> None:
    body = sse(chunk("Hel"), chunk("lo"), chunk(finish="stop"), usage_chunk(5, 2), "[DONE]")
    assert await collect(up, Raw(body, gzip=True, piece=10)) == EXPECTED


async def test_nothing_after_done_is_used_and_the_connection_is_reused(
    up: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The drain after [DONE] is bounded (0.1 s); a loaded test machine must not make it time out here.
    monkeypatch.setattr(openai_compat, "_DRAIN_SECONDS", 10.0)
    body = sse(
        chunk("Hel"), chunk("lo"), chunk(finish="stop"), usage_chunk(5, 2), "[DONE]", chunk(" never"), "{bad"
    )
    first, second = Raw(body), Raw(sse(chunk("again", finish="stop"), "[DONE]"))
    assert await collect(up, first) == EXPECTED
    assert await collect(up, second) == [TextDelta("again"), Finish("stop")]
    # One connection for both: the first body was read to its end after [DONE], not cut off.
    assert first.peers == second.peers


async def test_a_body_without_done_is_complete_once_finished(up: FakeUpstream) -> None:
    assert (
        await collect(up, Raw(sse(chunk("Hel"), chunk("lo"), chunk(finish="stop"), usage_chunk(5, 2))))
        == EXPECTED
    )


async def test_error_event_mid_stream_is_server_error_and_not_retried(up: FakeUpstream) -> None:
    body = sse(chunk("Hel")) + b'event: error\ndata: {"error": {"message": "model crashed"}}\n\n'
    up.script(Raw(body), text("retried"))
    seen: list[StreamEvent] = []
    with pytest.raises(BackendError) as info:
        async for event in backend(up).stream(REQUEST):
            seen.append(event)
    assert seen == [TextDelta("Hel")]
    assert info.value.code == "server_error"
    assert "model crashed" in info.value.message
    assert len(up.requests) == 1


async def test_connection_dropped_mid_answer_is_retryable_server_error(up: FakeUpstream) -> None:
    with pytest.raises(BackendError) as info:
        await collect(up, Raw(sse(chunk("Hel")), drop=True), text("retried"))
    assert "dropped the connection" in info.value.message
    assert info.value.retryable
    assert len(up.requests) == 1  # text was out: no retry


async def test_connection_dropped_before_any_text_is_retried(up: FakeUpstream) -> None:
    events = await collect(up, Raw(sse(chunk("", role="assistant")), drop=True), text("retried"))
    assert events[0] == TextDelta("retried")
    assert len(up.requests) == 2


async def test_connection_dropped_after_the_finish_keeps_the_answer(up: FakeUpstream) -> None:
    body = sse(chunk("Hel"), chunk("lo"), chunk(finish="stop"), usage_chunk(5, 2))
    assert await collect(up, Raw(body, drop=True)) == EXPECTED


async def test_empty_body_is_retried_then_reported(up: FakeUpstream) -> None:
    with pytest.raises(BackendError) as info:
        await collect(up, Raw(b""), Raw(b": only a comment\n\n"), max_retries=1)
    assert "without a finish_reason" in info.value.message
    assert len(up.requests) == 2


# --------------------------------------------------------------------------------------------------
# Coalescing: one read's text is one delta; UPSTREAM_READ_INTERVAL_MS spaces the reads


def test_merge_text_joins_only_consecutive_text() -> None:
    call = ToolCallDelta(0, "c1", "f", "{}")
    events: list[StreamEvent] = [
        TextDelta("a"),
        TextDelta("b"),
        call,
        TextDelta("c"),
        Usage(1, 2),
        Finish("stop"),
    ]
    assert merge_text(events) == [TextDelta("ab"), call, TextDelta("c"), Usage(1, 2), Finish("stop")]
    assert merge_text([TextDelta("x")]) == [TextDelta("x")]


async def test_one_read_of_several_chunks_is_one_text_delta(up: FakeUpstream) -> None:
    body = sse(chunk("Hel"), chunk("lo"), chunk(", "), chunk("you"), chunk(finish="stop"), "[DONE]")
    up.script(Raw(body))  # one HTTP chunk: one read
    events = [e async for e in backend(up).stream(REQUEST)]
    assert events == [TextDelta("Hello, you"), Finish("stop")]


async def test_read_interval_waits_between_reads_and_loses_nothing(up: FakeUpstream) -> None:
    import asyncio
    import itertools

    chunks = [f"t{i} " for i in range(8)]
    up.script(text(*chunks, delay=0.01))
    paced = OpenAICompatBackend(up.base_url, "k", connect_timeout=2.0, stall_timeout=5.0, read_interval=0.2)
    loop = asyncio.get_running_loop()
    arrivals: list[tuple[float, str]] = []
    async for ev in paced.stream(REQUEST):
        if isinstance(ev, TextDelta):
            arrivals.append((loop.time(), ev.text))
    assert "".join(t for _, t in arrivals) == "".join(chunks)
    # The upstream sends a chunk every 10 ms; after the first text the connection is read only on
    # the loop's 0.2 s ticks, each read bringing what arrived meanwhile: the 70 ms of chunks after
    # the first come with at most two reads, none before the first tick.
    (first, _), *later = arrivals
    assert later and all(t >= pacing.next_tick(first - 0.01, 0.2) - 0.002 for t, _ in later)
    gaps = [b[0] - a[0] for a, b in itertools.pairwise(later)]
    assert 1 + sum(g > 0.05 for g in gaps) <= 2
