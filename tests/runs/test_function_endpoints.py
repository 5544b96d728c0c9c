"""The engine answers a function call itself when staff attached an endpoint to the function: the
run goes on without requires_action, the step records arguments and output, the model reads the
output. Calls without an endpoint keep the API's requires_action contract (only for those calls);
in a chat run nobody could answer them, so the run ends at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from assistants_app import errors
from assistants_app.backends import fake
from assistants_app.models import Assistant, FunctionEndpoint, Run, RunStep
from assistants_app.models.run import RunOrigin
from assistants_app.runs import state
from assistants_app.runs.engine import Execution
from assistants_app.runs.events import get_event_log
from assistants_app.services.runs import start_run, submit_tool_outputs
from assistants_app.services.threads import create_thread, post_message
from tests.fakes.endpoint import FakeEndpoint
from tests.support.helpers import collect_events, names, text_of, wait_run


def function(name: str, **properties: str) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "parameters": {
                "type": "object",
                "properties": {k: {"type": v} for k, v in properties.items()},
                "required": list(properties),
            },
        },
    }


@pytest.fixture
def ep(settings) -> Iterator[FakeEndpoint]:
    settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE = "127.0.0.1"
    with FakeEndpoint() as server:
        yield server


@pytest.fixture
def assistant(alice, ep):
    a = Assistant.objects.create(
        owner=alice,
        model="gpt-4o",
        tools=[function("get_weather", city="string"), function("book_table", people="integer")],
    )
    FunctionEndpoint.objects.create(assistant=a, function_name="get_weather", url=ep.url("/echo"))
    return a


@pytest.fixture
def thread(alice):
    t = create_thread(alice)
    post_message(t, role="user", content="Weather in Paris?")
    return t


def tool_call(step: RunStep, index: int = 0) -> Any:
    return step.step_details["tool_calls"][index]


def test_a_function_with_an_endpoint_is_answered_by_the_engine(executor, assistant, thread, ep) -> None:
    fake.script(fake.tool_turn(("get_weather", '{"city": "Paris"}')), fake.text_turn("Sunny."))
    run = start_run(thread, assistant)
    events = collect_events(run.id)
    assert "thread.run.requires_action" not in names(events)
    assert names(events)[-1] == "thread.run.completed"
    assert text_of(events) == "Sunny."
    assert wait_run(run.id).status == "completed"
    # The endpoint got the arguments; the step records them and the answer.
    assert ep.requests[0].json() == {"city": "Paris"}
    step = RunStep.objects.get(run=run, type="tool_calls")
    assert step.status == "completed"
    fn = tool_call(step)["function"]
    assert fn["name"] == "get_weather" and fn["arguments"] == '{"city": "Paris"}'
    assert json.loads(fn["output"])["json"] == {"city": "Paris"}
    # The same step deltas an API client sees for a function call: the output arrives as one.
    outputs = [
        c["function"]["output"]
        for ev in events
        if ev.event == "thread.run.step.delta"
        for c in ev.data["delta"]["step_details"]["tool_calls"]
        if c.get("function", {}).get("output")
    ]
    assert outputs == [fn["output"]]
    # The model read the output in its next request.
    second = fake.requests()[1]
    assert second.messages[-1] == {
        "role": "tool",
        "tool_call_id": tool_call(step)["id"],
        "content": fn["output"],
    }


def test_an_endpoint_failure_is_an_output_not_a_failed_run(executor, assistant, thread, ep) -> None:
    FunctionEndpoint.objects.filter(assistant=assistant).update(url=ep.url("/status/500"))
    fake.script(fake.tool_turn(("get_weather", '{"city": "Paris"}')), fake.text_turn("The service is down."))
    run = start_run(thread, assistant)
    assert names(collect_events(run.id))[-1] == "thread.run.completed"
    output = tool_call(RunStep.objects.get(run=run, type="tool_calls"))["function"]["output"]
    assert output.startswith("Error: the endpoint answered HTTP 500")
    assert fake.requests()[1].messages[-1]["content"] == output


def test_mixed_calls_wait_only_for_the_ones_without_an_endpoint(executor, assistant, thread, ep) -> None:
    fake.script(
        fake.tool_turn(("get_weather", '{"city": "Paris"}'), ("book_table", '{"people": 2}')),
        fake.text_turn("Booked, and sunny."),
    )
    run = start_run(thread, assistant)
    assert names(collect_events(run.id))[-1] == "thread.run.requires_action"
    run = wait_run(run.id)
    pending = run.required_action["submit_tool_outputs"]["tool_calls"]  # type: ignore[index]
    assert [c["function"]["name"] for c in pending] == ["book_table"]
    step = RunStep.objects.get(run=run, type="tool_calls")
    weather_id = tool_call(step, 0)["id"]
    assert json.loads(tool_call(step, 0)["function"]["output"])["json"] == {"city": "Paris"}
    assert tool_call(step, 1)["function"]["output"] is None
    # The endpoint's call is answered already: submitting it too is refused, the rest is enough.
    with pytest.raises(errors.InvalidRequest, match=weather_id):
        submit_tool_outputs(
            run,
            [{"tool_call_id": weather_id, "output": "x"}, {"tool_call_id": pending[0]["id"], "output": "ok"}],
        )
    cursor = get_event_log().end_cursor(run.id)
    submit_tool_outputs(run, [{"tool_call_id": pending[0]["id"], "output": "booked"}])
    assert names(collect_events(run.id, cursor))[-1] == "thread.run.completed"
    tool_messages = [m for m in fake.requests()[1].messages if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages][1] == "booked"
    assert json.loads(tool_messages[0]["content"])["json"] == {"city": "Paris"}
    assert len(ep.requests) == 1  # not called again when the run resumed


def test_without_an_endpoint_an_api_run_still_requires_action(executor, assistant, thread) -> None:
    fake.script(fake.tool_turn(("book_table", '{"people": 2}')))
    run = start_run(thread, assistant)
    assert names(collect_events(run.id))[-1] == "thread.run.requires_action"


def test_a_chat_run_ends_at_once_on_a_function_nobody_can_answer(executor, assistant, thread, ep) -> None:
    fake.script(fake.tool_turn(("get_weather", '{"city": "Paris"}'), ("book_table", '{"people": 2}')))
    run = start_run(thread, assistant, origin=RunOrigin.CHAT)
    events = collect_events(run.id)
    assert "thread.run.requires_action" not in names(events)
    assert names(events)[-1] == "thread.run.failed"
    run = wait_run(run.id)
    assert run.last_error == {
        "code": "server_error",
        "message": "The assistant tried to use the tool “book_table”, which the chat can't run: nothing on "
        "this server answers it. An administrator can attach an endpoint to it in the admin, or remove "
        "it from the assistant.",
    }
    step = RunStep.objects.get(run=run, type="tool_calls")
    assert step.status == "failed" and step.last_error == run.last_error
    assert ep.requests == []  # nothing in that round ran: the reply could not be finished anyway


def test_a_chat_run_uses_endpoints(executor, assistant, thread, ep) -> None:
    fake.script(fake.tool_turn(("get_weather", '{"city": "Paris"}')), fake.text_turn("Sunny."))
    run = start_run(thread, assistant, origin=RunOrigin.CHAT)
    assert names(collect_events(run.id))[-1] == "thread.run.completed"
    assert len(ep.requests) == 1


def test_a_first_claim_without_functions_loads_with_no_query(
    alice, event_log, django_assert_num_queries
) -> None:
    # Endpoints only answer function calls, and a run's tool steps are all its own executions': the
    # first execution of a run without functions has nothing to read (two SELECTs less per run).
    plain = Assistant.objects.create(owner=alice, model="gpt-4o")
    run = start_run(create_thread(alice), plain)
    claimed = state.claim(run.id, "w1")
    assert claimed is not None and claimed.attempts == 1
    execution = Execution(claimed)
    assert execution._loads_from_memory()  # so the engine calls it on the loop, without a thread trip
    with django_assert_num_queries(0):
        loaded, answered, endpoints = execution._load()
    assert loaded == plain and answered is None and endpoints == {}
    # A second execution (after submit_tool_outputs, or a retry) reads its steps on a thread.
    claimed.attempts = 2
    assert not execution._loads_from_memory()
    # A run read without the claim's join would query for its assistant: that goes to a thread too.
    assert not Execution(Run.objects.get(id=run.id))._loads_from_memory()


def test_a_run_with_functions_loads_its_endpoints(
    assistant, thread, event_log, django_assert_num_queries
) -> None:
    claimed = state.claim(start_run(thread, assistant).id, "w1")
    assert claimed is not None
    execution = Execution(claimed)
    assert not execution._loads_from_memory()
    with django_assert_num_queries(1):
        _, _, endpoints = execution._load()
    assert list(endpoints) == ["get_weather"]
