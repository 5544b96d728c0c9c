"""Function endpoints through the official `openai` SDK against the real server: a function staff
attached an endpoint to is answered by the server (no requires_action; the step carries the
arguments and the endpoint's output, polled and streamed), and the rest keep the API's contract."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from tests.fakes.endpoint import FakeEndpoint
from tests.fakes.upstream import text, tool_calls
from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]

# The endpoint below runs on 127.0.0.1, which the server refuses unless allowed; the header's value
# lives in the server's environment only.
LIVE_SETTINGS = {"FUNCTION_ENDPOINTS_ALLOWED_PRIVATE": "127.0.0.1", "WEATHER_TOKEN": "Bearer live-secret"}

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}
BOOK = {
    "type": "function",
    "function": {"name": "book_table", "parameters": {"type": "object", "properties": {}}},
}


@pytest.fixture(scope="module")
def ep() -> Iterator[FakeEndpoint]:
    with FakeEndpoint() as server:
        yield server


@pytest.fixture(scope="module")
def client(live: LiveServer) -> openai.OpenAI:
    return live.client()


@pytest.fixture(scope="module")
def assistant(live: LiveServer, client: openai.OpenAI, ep: FakeEndpoint) -> Any:
    a = client.beta.assistants.create(model="gpt-4o", tools=[WEATHER, BOOK])  # type: ignore[list-item]
    # Staff attach the endpoint in the admin; here straight into the server's database.
    live.sql(
        "INSERT INTO assistants_app_functionendpoint (assistant_id, function_name, url, method, header_env, "
        "timeout_seconds, max_response_bytes) VALUES (?, ?, ?, ?, ?, ?, ?)",
        a.id,
        "get_weather",
        ep.url("/echo"),
        "POST",
        json.dumps({"Authorization": "WEATHER_TOKEN"}),
        10.0,
        65536,
    )
    return a


def tool_step(client: openai.OpenAI, thread_id: str, run_id: str) -> Any:
    steps = client.beta.threads.runs.steps.list(run_id=run_id, thread_id=thread_id).data
    return next(s for s in steps if s.type == "tool_calls")


def test_the_server_answers_the_call_and_the_run_completes(live, client, assistant, ep) -> None:
    live.upstream.script(tool_calls(("get_weather", '{"city": "Paris"}')), text("Sunny in Paris."))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Paris?"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "completed", (run.last_error, live.log_tail())
    assert run.required_action is None
    call = tool_step(client, thread.id, run.id).step_details.tool_calls[0]
    assert call.type == "function" and call.function.name == "get_weather"
    assert call.function.arguments == '{"city": "Paris"}'
    assert json.loads(call.function.output)["json"] == {"city": "Paris"}
    answer = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert answer.content[0].text.value == "Sunny in Paris."
    request = next(r for r in ep.requests if r.json() == {"city": "Paris"})
    assert request.headers["authorization"] == "Bearer live-secret"
    # The model read the endpoint's output.
    assert live.upstream.requests[-1]["messages"][-1]["content"] == call.function.output
    # API clients see exactly the function definitions they sent.
    tools = client.beta.assistants.retrieve(assistant.id).tools
    assert [t.model_dump(exclude_none=True) for t in tools] == [WEATHER, BOOK]


def test_streamed_the_output_arrives_as_a_step_delta(live, client, assistant) -> None:
    live.upstream.script(tool_calls(("get_weather", '{"city": "Rome"}')), text("Warm in Rome."))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Weather in Rome?"}])
    seen: list[str] = []
    outputs: list[str] = []
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        for event in stream:
            seen.append(event.event)
            if event.event == "thread.run.step.delta":
                for c in event.data.delta.step_details.tool_calls or []:
                    if c.type == "function" and c.function and c.function.output:
                        outputs.append(c.function.output)
        steps = stream.get_final_run_steps()
    assert "thread.run.requires_action" not in seen and seen[-1] == "thread.run.completed"
    assert len(outputs) == 1 and json.loads(outputs[0])["json"] == {"city": "Rome"}
    (done,) = [s for s in steps if s.type == "tool_calls"]
    assert done.step_details.tool_calls[0].function.output == outputs[0]


def test_only_the_calls_without_an_endpoint_wait_for_the_client(live, client, assistant) -> None:
    live.upstream.script(
        tool_calls(("get_weather", '{"city": "Oslo"}'), ("book_table", "{}")), text("Booked; it is cold.")
    )
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Book and weather"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert run.status == "requires_action"
    pending = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in pending] == ["book_table"]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": pending[0].id, "output": "table for 2"}],
        poll_interval_ms=50,
    )
    assert run.status == "completed"
    calls = tool_step(client, thread.id, run.id).step_details.tool_calls
    assert json.loads(calls[0].function.output)["json"] == {"city": "Oslo"}
    assert calls[1].function.output == "table for 2"


def test_a_client_cannot_pose_as_the_chat(client, assistant) -> None:
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError, match="origin"):
        client.beta.threads.runs.create(
            thread_id=thread.id, assistant_id=assistant.id, extra_body={"origin": "chat"}
        )
