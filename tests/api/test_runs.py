"""Runs through the SDK against the real server: polling, function calling, every streaming variant,
cancellation, busy threads, failures, disconnecting clients, steps."""

from __future__ import annotations

import json
import time
from typing import Any

import httpx2
import openai
import pytest
from openai import AssistantEventHandler

from tests.fakes.upstream import error, hang, text, tool_calls
from tests.support.helpers import iter_sse
from tests.support.live_server import LiveServer

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")


@pytest.fixture(scope="module")
def client(live: LiveServer) -> openai.OpenAI:
    return live.client()


@pytest.fixture(scope="module")
def assistant(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(model="gpt-4o", instructions="Be brief.", tools=[WEATHER])  # type: ignore[list-item]


def new_thread(client: openai.OpenAI, content: str = "What's the weather?") -> Any:
    return client.beta.threads.create(messages=[{"role": "user", "content": content}])


def wait_status(
    client: openai.OpenAI, thread_id: str, run_id: str, statuses: tuple[str, ...], timeout: float = 10
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in statuses:
            return run
        assert time.monotonic() < deadline, f"run still {run.status}"
        time.sleep(0.05)


def assistant_text(client: openai.OpenAI, thread_id: str, run_id: str) -> str:
    msgs = client.beta.threads.messages.list(thread_id, run_id=run_id).data
    return "".join(p.text.value for m in msgs for p in m.content if p.type == "text")


# --- polling and function calling ---------------------------------------------------------------------
def test_create_and_poll_then_steps(live: LiveServer, client: openai.OpenAI, assistant: Any) -> None:
    live.upstream.script(text("Sunny", " today."))
    thread = new_thread(client)
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, metadata={"via": "poll"}, temperature=0.2
    )
    assert run.status == "completed" and run.metadata == {"via": "poll"} and run.temperature == 0.2
    assert run.usage is not None and run.usage.total_tokens > 0
    assert assistant_text(client, thread.id, run.id) == "Sunny today."
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id)
    assert [s.type for s in steps.data] == ["message_creation"]
    step = client.beta.threads.runs.steps.retrieve(
        steps.data[0].id,
        thread_id=thread.id,
        run_id=run.id,
        include=["step_details.tool_calls[*].file_search.results[*].content"],
    )
    assert step.status == "completed" and step.step_details.type == "message_creation"
    raw = client.beta.threads.runs.with_raw_response.retrieve(run.id, thread_id=thread.id)
    assert raw.headers["openai-poll-after-ms"] == "50"
    assert [r.id for r in client.beta.threads.runs.list(thread.id)] == [run.id]
    changed = client.beta.threads.runs.update(run.id, thread_id=thread.id, metadata={"reviewed": "yes"})
    assert changed.metadata == {"reviewed": "yes"}


def test_function_calling_parallel_with_poll(live: LiveServer, client: openai.OpenAI, assistant: Any) -> None:
    live.upstream.script(
        tool_calls(("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')),
        text("Paris sunny, Rome rainy."),
    )
    thread = new_thread(client)
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action"
    assert run.required_action is not None and run.required_action.type == "submit_tool_outputs"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Paris", "Rome"]
    assert all(c.type == "function" and c.function.name == "get_weather" for c in calls)

    # Missing and unknown outputs are refused by name, and the run keeps waiting.
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": calls[0].id, "output": "sunny"}]
        )
    assert calls[1].id in err.value.message and err.value.param == "tool_outputs"
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": "call_nope", "output": "x"}]
        )
    assert "call_nope" in err.value.message

    done = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[
            {"tool_call_id": calls[0].id, "output": "sunny"},
            {"tool_call_id": calls[1].id, "output": "rainy"},
        ],
    )
    assert done.status == "completed"
    assert assistant_text(client, thread.id, run.id) == "Paris sunny, Rome rainy."
    steps = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id, order="asc").data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    outputs = [c.function.output for c in steps[0].step_details.tool_calls]  # type: ignore[union-attr]
    assert outputs == ["sunny", "rainy"]
    # The model saw both results.
    sent = live.upstream.requests[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] == "tool"] == ["sunny", "rainy"]
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": calls[0].id, "output": "again"}]
        )


def test_submit_tool_outputs_stream(live: LiveServer, client: openai.OpenAI, assistant: Any) -> None:
    live.upstream.script(tool_calls(("get_weather", '{"city": "Oslo"}')), text("Cold", " in Oslo."))
    thread = new_thread(client)
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        events = [e.event for e in stream]
        run = stream.get_final_run()
    assert events[0] == "thread.run.created" and events[-1] == "thread.run.requires_action"
    assert "thread.run.step.delta" in events
    call = run.required_action.submit_tool_outputs.tool_calls[0]  # type: ignore[union-attr]

    texts: list[str] = []

    class Handler(AssistantEventHandler):
        def on_text_delta(self, delta: Any, snapshot: Any) -> None:
            texts.append(delta.value)

    with client.beta.threads.runs.submit_tool_outputs_stream(
        run_id=run.id,
        thread_id=thread.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "-5C"}],
        event_handler=Handler(),
    ) as stream:
        stream.until_done()
        final = stream.get_final_run()
    assert final.status == "completed"
    assert "".join(texts) == "Cold in Oslo."


# --- raw streaming ---------------------------------------------------------------------------------------
def test_raw_runs_create_stream_has_named_events(
    live: LiveServer, client: openai.OpenAI, assistant: Any
) -> None:
    live.upstream.script(text("a", "b", "c"))
    thread = new_thread(client)
    events = list(
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True)
    )
    names = [e.event for e in events]
    assert all(n is not None for n in names)
    assert names[:3] == ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]
    assert names[-1] == "thread.run.completed"
    assert names.index("thread.message.created") < names.index("thread.message.delta")
    deltas = "".join(e.data.delta.content[0].text.value for e in events if e.event == "thread.message.delta")  # type: ignore[union-attr, index, misc]
    assert deltas == "abc"


def test_raw_create_and_run_stream(live: LiveServer, client: openai.OpenAI, assistant: Any) -> None:
    live.upstream.script(text("hello", " there"))
    events = list(
        client.beta.threads.create_and_run(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": "hi"}], "metadata": {"src": "car"}},
            stream=True,
        )
    )
    assert all(e.event is not None for e in events)
    assert events[0].event == "thread.created" and events[0].data.metadata == {"src": "car"}
    assert events[-1].event == "thread.run.completed"
    thread_id = events[0].data.id
    assert client.beta.threads.messages.list(thread_id).data[0].content[0].text.value == "hello there"  # type: ignore[union-attr]


def test_create_and_run_poll_and_stream_helper(
    live: LiveServer, client: openai.OpenAI, assistant: Any
) -> None:
    live.upstream.script(text("polled"), text("streamed"))
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert run.status == "completed" and assistant_text(client, run.thread_id, run.id) == "polled"
    with client.beta.threads.create_and_run_stream(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "hi"}]}
    ) as stream:
        stream.until_done()
        assert stream.get_final_run().status == "completed"
        assert stream.get_final_messages()[0].content[0].text.value == "streamed"  # type: ignore[union-attr]


def test_sse_framing_on_the_wire(live: LiveServer, client: openai.OpenAI, assistant: Any) -> None:
    live.upstream.script(text("x"))
    thread = new_thread(client)
    with httpx2.stream(
        "POST",
        f"{live.base_url}/threads/{thread.id}/runs",
        json={"assistant_id": assistant.id, "stream": True},
        headers={"Authorization": f"Bearer {live.keys['alice']}", "OpenAI-Beta": "assistants=v2"},
        timeout=10,
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        frames = list(iter_sse(response))
    assert all(event is not None for event, _ in frames)
    assert frames[-1] == ("done", "[DONE]")
    assert frames[-2][0] == "thread.run.completed"
    assert json.loads(frames[0][1])["object"] == "thread.run"


async def test_async_client_stream_and_poll(live: LiveServer, assistant: Any) -> None:
    live.upstream.script(text("async ", "stream"), text("async poll"))
    client = live.async_client()
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    async with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        chunks = [delta async for delta in stream.text_deltas]
    assert "".join(chunks) == "async stream"
    run = await client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "completed"
    await client.close()


# --- cancellation, busy threads, failures -------------------------------------------------------------
def test_cancel_mid_stream(live: LiveServer, client: openai.OpenAI, assistant: Any) -> None:
    live.upstream.script(hang(after=("partial ", "answer")))
    thread = new_thread(client)
    stream = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True)
    seen: list[str] = []
    run_id = None
    streamed = ""
    for event in stream:
        seen.append(event.event)
        if event.event == "thread.run.created":
            run_id = event.data.id
        if event.event == "thread.message.delta":
            streamed += event.data.delta.content[0].text.value  # type: ignore[union-attr, index, operator]
            if streamed != "partial answer":
                continue
            # Everything the upstream will ever send has arrived; it now hangs until we cancel.
            cancelled = client.beta.threads.runs.cancel(run_id, thread_id=thread.id)  # type: ignore[arg-type]
            assert cancelled.status in ("cancelling", "cancelled")
    assert seen[-1] == "thread.run.cancelled"
    run = client.beta.threads.runs.retrieve(run_id, thread_id=thread.id)  # type: ignore[arg-type]
    assert run.status == "cancelled" and run.cancelled_at is not None
    msg = client.beta.threads.messages.list(thread.id, run_id=run_id).data[0]  # type: ignore[arg-type]
    assert msg.status == "incomplete" and msg.incomplete_details.reason == "run_cancelled"  # type: ignore[union-attr]
    assert msg.content[0].text.value == "partial answer"  # type: ignore[union-attr]
    assert live.upstream.wait_closed_early(1, timeout=5)
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.cancel(run_id, thread_id=thread.id)  # type: ignore[arg-type]


def test_busy_thread_is_a_400_that_is_not_retried(live: LiveServer, assistant: Any) -> None:
    client, counter = live.counted_client()  # default max_retries: the header must stop the SDK
    live.upstream.script(hang())
    thread = new_thread(client)
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    wait_status(client, thread.id, run.id, ("in_progress",))
    counter.reset()
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.messages.create(thread.id, role="user", content="another")
    assert err.value.code == "thread_busy" and err.value.response.headers["x-should-retry"] == "false"
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.delete(thread.id)
    assert counter.count("POST") == 2 and counter.count("DELETE") == 1  # no retries
    client.beta.threads.runs.cancel(run.id, thread_id=thread.id)
    assert wait_status(client, thread.id, run.id, TERMINAL).status == "cancelled"


def test_upstream_failure_ends_stream_with_failed_run(
    live: LiveServer, client: openai.OpenAI, assistant: Any
) -> None:
    live.upstream.script(error(400, "bad prompt"))
    thread = new_thread(client)
    events = list(
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True)
    )
    assert events[-1].event == "thread.run.failed"
    assert events[-1].data.last_error is not None


def test_disconnecting_client_does_not_stop_the_run(
    live: LiveServer, client: openai.OpenAI, assistant: Any
) -> None:
    live.upstream.script(text("one ", "two ", "three ", "four", delay=0.1))
    thread = new_thread(client)
    with httpx2.stream(
        "POST",
        f"{live.base_url}/threads/{thread.id}/runs",
        json={"assistant_id": assistant.id, "stream": True},
        headers={"Authorization": f"Bearer {live.keys['alice']}"},
        timeout=10,
    ) as response:
        run_id = None
        for event, data in iter_sse(response):
            if event == "thread.run.created":
                run_id = json.loads(data)["id"]
            if event == "thread.message.delta":
                break  # hang up after the first delta
    assert run_id is not None
    run = wait_status(client, thread.id, run_id, TERMINAL)
    assert run.status == "completed"
    assert assistant_text(client, thread.id, run_id) == "one two three four"


def test_run_parameter_validation(client: openai.OpenAI, assistant: Any) -> None:
    thread = new_thread(client)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"assistant_id": "asst_missing"}, "assistant_id"),
        (
            {"assistant_id": assistant.id, "tool_choice": {"type": "function", "function": {"name": "nope"}}},
            "tool_choice.function.name",
        ),
        (
            {"assistant_id": assistant.id, "truncation_strategy": {"type": "first_messages"}},
            "truncation_strategy.type",
        ),
        ({"assistant_id": assistant.id, "reasoning_effort": "low"}, "reasoning_effort"),
        (
            {
                "assistant_id": assistant.id,
                "additional_messages": [{"role": "user", "content": "x", "metadata": {"a": 1}}],
            },
            "additional_messages[0].metadata.a",
        ),
        ({"assistant_id": assistant.id, "include": ["step_details.bogus"]}, "include[0]"),
    ]
    for kwargs, param in cases:
        with pytest.raises((openai.BadRequestError, openai.NotFoundError)) as err:
            client.beta.threads.runs.create(thread_id=thread.id, **kwargs)
        assert err.value.param == param, (param, err.value.message)
    assert client.beta.threads.runs.list(thread.id).data == []
