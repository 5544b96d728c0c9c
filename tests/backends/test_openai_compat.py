"""OpenAICompatBackend against a fake upstream over real HTTP (the real openai SDK and httpx in between)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from typing import Any

import httpx2
import openai
import pytest

from assistants_app.backends.base import (
    BackendError,
    ChatRequest,
    Finish,
    StreamEvent,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from assistants_app.backends.client import close_clients, fetch_models
from assistants_app.backends.openai_compat import OpenAICompatBackend, backend_from_settings
from tests.fakes.upstream import FakeUpstream, error, hang, hang_up, length, malformed, text, tool_calls
from tests.support.tls import tls_contexts


def make_backend(
    up: FakeUpstream, *, max_retries: int = 2, stall_timeout: float = 5.0
) -> OpenAICompatBackend:
    return OpenAICompatBackend(
        up.base_url,
        "test-key",
        connect_timeout=2.0,
        stall_timeout=stall_timeout,
        max_retries=max_retries,
        retry_base=0.01,
    )


def request(**kwargs: object) -> ChatRequest:
    return ChatRequest(model="fake-model", messages=[{"role": "user", "content": "hi there"}], **kwargs)  # type: ignore[arg-type]


async def collect(backend: OpenAICompatBackend, req: ChatRequest | None = None) -> list[StreamEvent]:
    return [event async for event in backend.stream(req or request())]


def _made_of(texts: list[str], chunks: list[str]) -> bool:
    """The deltas are the upstream's chunks in order, some joined (all that one read brought),
    never one cut in two or lost."""
    ends = set(itertools.accumulate(len(c) for c in chunks))
    cuts = itertools.accumulate(len(t) for t in texts)
    return "".join(texts) == "".join(chunks) and all(t for t in texts) and all(c in ends for c in cuts)


async def test_streams_text_in_order_then_usage_then_finish(up: FakeUpstream) -> None:
    up.script(text("Hel", "lo", ", world", usage=(11, 3)))
    events = await collect(make_backend(up))
    # Chunks that arrive together come out as one delta (aiohttp hands over all it has): the text
    # and the order of the events are what is promised, not where one delta ends.
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(texts) == "Hello, world" and _made_of(texts, ["Hel", "lo", ", world"])
    assert events[len(texts) :] == [Usage(prompt_tokens=11, completion_tokens=3), Finish("stop")]
    sent = up.requests[0]
    assert sent["stream"] is True
    assert sent["stream_options"] == {"include_usage": True}
    assert up.request_headers[0]["authorization"] == "Bearer test-key"


async def test_sends_only_the_fields_that_are_set(up: FakeUpstream) -> None:
    await collect(make_backend(up), request(tool_choice="auto", parallel_tool_calls=False))
    assert (
        not {"tools", "tool_choice", "parallel_tool_calls", "temperature", "max_tokens"}
        & up.requests[0].keys()
    )

    fmt = {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}}
    tools = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]
    await collect(
        make_backend(up),
        request(
            tools=tools, tool_choice="required", parallel_tool_calls=False, max_tokens=7, response_format=fmt
        ),
    )
    sent = up.requests[1]
    assert sent["tools"] == tools
    assert sent["tool_choice"] == "required"
    assert sent["parallel_tool_calls"] is False
    assert sent["max_tokens"] == 7
    assert sent["response_format"] == fmt


async def test_the_prompt_goes_out_exactly_as_built(up: FakeUpstream) -> None:
    # The request skips the SDK's argument transform (_open_stream): every shape a prompt can have
    # must still reach the upstream unchanged.
    messages: list[dict[str, Any]] = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,iVBORw0KGgo=", "detail": "low"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": '{"a": 1}'}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "ünïcødé ✓"},
    ]
    await collect(make_backend(up), ChatRequest(model="fake-model", messages=messages, temperature=0.5))
    sent = up.requests[0]
    assert sent["messages"] == messages
    assert sent["temperature"] == 0.5 and sent["model"] == "fake-model"


async def test_parallel_tool_call_deltas_reassemble(up: FakeUpstream) -> None:
    weather = json.dumps({"city": "Oslo", "unit": "celsius"})
    time_args = json.dumps({"tz": "Europe/Oslo"})
    up.script(tool_calls(("get_weather", weather), ("get_time", time_args), split=4))
    events = await collect(make_backend(up))

    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    calls: dict[int, dict[str, str]] = {}
    for d in deltas:
        call = calls.setdefault(d.index, {"id": "", "name": "", "arguments": ""})
        call["id"] += d.id or ""
        call["name"] += d.name or ""
        call["arguments"] += d.arguments or ""
    assert [calls[i]["name"] for i in sorted(calls)] == ["get_weather", "get_time"]
    assert json.loads(calls[0]["arguments"]) == {"city": "Oslo", "unit": "celsius"}
    assert json.loads(calls[1]["arguments"]) == {"tz": "Europe/Oslo"}
    assert all(c["id"].startswith("call_") for c in calls.values())
    assert len([d for d in deltas if d.index == 0 and d.arguments]) > 1  # really streamed in pieces
    assert events[-1] == Finish("tool_calls")


async def test_length_finish(up: FakeUpstream) -> None:
    up.script(length("truncated"))
    events = await collect(make_backend(up))
    assert events[0] == TextDelta("truncated")
    assert events[-1] == Finish("length")


async def test_500_then_success_is_retried_once(up: FakeUpstream) -> None:
    up.script(error(500, "boom"), text("only", " once"))
    events = await collect(make_backend(up))
    texts = [e.text for e in events if isinstance(e, TextDelta)]
    assert "".join(texts) == "only once" and _made_of(texts, ["only", " once"])
    assert len(up.requests) == 2


async def test_persistent_429_gives_rate_limit_exceeded_after_all_attempts(up: FakeUpstream) -> None:
    up.script(*[error(429, "slow down", headers={"retry-after-ms": "5"})] * 10)
    with pytest.raises(BackendError) as info:
        await collect(make_backend(up, max_retries=3))
    assert info.value.code == "rate_limit_exceeded"
    assert "slow down" in info.value.message
    assert len(up.requests) == 4


async def test_retry_after_is_honoured_and_capped(up: FakeUpstream) -> None:
    up.script(error(503, headers={"retry-after": "3600"}), text("ok"))
    backend = make_backend(up)
    backend.max_retry_delay = 0.05
    started = time.monotonic()
    events = await collect(backend)
    assert events[0] == TextDelta("ok")
    assert time.monotonic() - started < 2


async def test_400_is_invalid_prompt_and_not_retried(up: FakeUpstream) -> None:
    up.script(error(400, "This model's maximum context length is 8192 tokens"), text("never"))
    with pytest.raises(BackendError) as info:
        await collect(make_backend(up))
    assert info.value.code == "invalid_prompt"
    assert "maximum context length" in info.value.message
    assert len(up.requests) == 1


async def test_401_tells_the_operator_about_the_key(up: FakeUpstream) -> None:
    up.script(error(401, "Incorrect API key provided: sk-abc***xyz"))
    with pytest.raises(BackendError) as info:
        await collect(make_backend(up))
    assert info.value.code == "server_error"
    assert "OPENAI_API_KEY" in info.value.message
    assert "sk-abc" not in info.value.message  # user-visible: never echo (part of) the key
    assert len(up.requests) == 1


async def test_stall_mid_stream_is_server_error_within_stall_timeout(up: FakeUpstream) -> None:
    up.script(hang(after=["Hello"]))
    seen: list[StreamEvent] = []
    started = time.monotonic()
    with pytest.raises(BackendError) as info:
        async for event in make_backend(up, stall_timeout=0.3).stream(request()):
            seen.append(event)
    elapsed = time.monotonic() - started
    assert seen == [TextDelta("Hello")]
    assert info.value.code == "server_error"
    assert "stalled" in info.value.message
    assert 0.25 < elapsed < 1.5
    assert len(up.requests) == 1  # text was already out: a retry would repeat it


async def test_stall_before_any_text_is_retried(up: FakeUpstream) -> None:
    up.script(hang(), text("recovered"))
    events = await collect(make_backend(up, stall_timeout=0.3))
    assert events[0] == TextDelta("recovered")
    assert len(up.requests) == 2


async def test_malformed_json_is_server_error(up: FakeUpstream) -> None:
    up.script(malformed())
    with pytest.raises(BackendError) as info:
        await collect(make_backend(up))
    assert info.value.code == "server_error"
    assert "malformed" in info.value.message


async def test_wrong_shape_is_server_error(up: FakeUpstream) -> None:
    up.script(malformed('{"choices": "not a list"}', after=["partial"]))
    with pytest.raises(BackendError) as info:
        await collect(make_backend(up))
    assert "malformed" in info.value.message


async def test_error_object_mid_stream_is_server_error_with_upstream_message(up: FakeUpstream) -> None:
    up.script(malformed('{"error": {"message": "The server had an error while processing"}}', after=["par"]))
    with pytest.raises(BackendError) as info:
        await collect(make_backend(up))
    assert info.value.code == "server_error"
    assert "The server had an error while processing" in info.value.message
    assert len(up.requests) == 1


async def test_aclose_mid_stream_closes_the_upstream_connection(up: FakeUpstream) -> None:
    up.script(hang(after=["first", " second"]))
    stream = make_backend(up).stream(request())
    first = await anext(stream)
    assert isinstance(first, TextDelta) and first.text in ("first", "first second")
    await stream.aclose()
    assert await asyncio.to_thread(up.wait_closed_early, 1, 2.0)
    assert up.closed_early == 1


async def test_cancelling_the_consumer_closes_the_upstream_connection(up: FakeUpstream) -> None:
    up.script(hang(after=["first"]))
    got_first = asyncio.Event()

    async def consume() -> None:
        async for _ in make_backend(up).stream(request()):
            got_first.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_first.wait(), 2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(up.wait_closed_early, 1, 2.0)


async def test_unreachable_upstream_is_server_error() -> None:
    with FakeUpstream() as gone:
        base_url = gone.base_url
    backend = OpenAICompatBackend(base_url, "k", connect_timeout=0.5, max_retries=1, retry_base=0.01)
    with pytest.raises(BackendError) as info:
        await collect(backend)
    assert info.value.code == "server_error"
    # Refused at once: not a timeout, whatever the HTTP client's error mapping calls it.
    assert info.value.message == f"Could not connect to the upstream model server at {base_url}."


async def test_a_server_that_hangs_up_before_answering_is_retried_then_a_connection_error(
    up: FakeUpstream,
) -> None:
    up.script(hang_up(), text("back"))
    events = await collect(make_backend(up))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "back"
    up.script(hang_up(), hang_up())
    with pytest.raises(BackendError) as info:
        await collect(make_backend(up, max_retries=1))
    assert info.value.retryable and "stalled" not in info.value.message
    assert info.value.message == f"Could not connect to the upstream model server at {up.base_url}."


async def test_an_https_upstream_is_verified_against_the_configured_cas(tmp_path, monkeypatch) -> None:
    """The way to OpenAI itself: TLS through aiohttp, with the CAs the SDK's default client would
    trust (SSL_CERT_FILE here); a certificate no CA vouches for is refused, in plain words."""
    server_ctx, _, ca_pem = tls_contexts("127.0.0.1")
    (tmp_path / "ca.pem").write_bytes(ca_pem)
    with FakeUpstream(tls=server_ctx) as up:
        assert up.base_url.startswith("https://")
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))
        up.script(text("over", " TLS"))
        events = await collect(make_backend(up))
        assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "over TLS"
        await close_clients()
        monkeypatch.delenv("SSL_CERT_FILE")  # the system's CAs only: they never signed this one
        up.script(text("never"))
        with pytest.raises(BackendError) as info:
            await collect(make_backend(up, max_retries=0))
        assert info.value.message == f"Could not connect to the upstream model server at {up.base_url}."


async def test_unscripted_requests_echo(up: FakeUpstream) -> None:
    events = await collect(make_backend(up))
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Echo: hi there"


async def test_fake_stop_does_not_hang_on_an_open_stream() -> None:
    up = FakeUpstream().start()
    up.script(hang(after=["x"]))
    async with httpx2.AsyncClient() as client:
        body = {"model": "m", "stream": True, "messages": []}
        async with client.stream("POST", f"{up.base_url}/chat/completions", json=body) as response:
            await anext(response.aiter_bytes())
            started = time.monotonic()
            await asyncio.to_thread(up.stop)
            assert time.monotonic() - started < 1.0


async def test_fetch_models(up: FakeUpstream) -> None:
    assert await fetch_models(up.base_url, "k") == [
        {"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake-upstream"}
    ]
    with FakeUpstream() as gone:
        base_url = gone.base_url
    with pytest.raises(openai.APIConnectionError):
        await fetch_models(base_url, "k")


def test_backend_from_settings_without_configuration_explains_what_to_set(settings) -> None:
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    with pytest.raises(BackendError) as info:
        backend_from_settings()
    assert info.value.code == "server_error"
    assert "No model backend is configured" in info.value.message
    assert "OPENAI_BASE_URL" in info.value.message


def test_backend_from_settings_defaults(settings) -> None:
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = "sk-test"
    assert backend_from_settings().base_url == "https://api.openai.com/v1"

    settings.OPENAI_BASE_URL = "http://127.0.0.1:11434/v1"
    settings.OPENAI_API_KEY = ""
    local = backend_from_settings()
    assert (local.base_url, local.api_key) == ("http://127.0.0.1:11434/v1", "not-needed")
    assert local.max_retries == settings.UPSTREAM_MAX_RETRIES
