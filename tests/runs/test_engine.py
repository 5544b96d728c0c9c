from __future__ import annotations

import pytest

from assistants_app import errors
from assistants_app.backends import fake
from assistants_app.models import Assistant, Message, RunStep
from assistants_app.services.runs import start_run, submit_tool_outputs
from assistants_app.services.threads import create_thread, post_message
from tests.support.helpers import collect_events, names, text_of, wait_run


@pytest.fixture
def assistant(alice):
    return Assistant.objects.create(owner=alice, model="gpt-4o", instructions="Be brief.")


@pytest.fixture
def thread(alice):
    t = create_thread(alice)
    post_message(t, role="user", content="Hello there")
    return t


def test_streamed_text_run_completes(executor, assistant, thread):
    fake.script(fake.text_turn("Hi", " Alice", "!", usage=(12, 3)))
    run = start_run(thread, assistant)
    events = collect_events(run.id)
    assert names(events)[:2] == ["thread.run.created", "thread.run.queued"]
    assert "thread.run.in_progress" in names(events)
    assert names(events)[-1] == "thread.run.completed"
    assert text_of(events) == "Hi Alice!"
    created = names(events).index("thread.message.created")
    first_delta = names(events).index("thread.message.delta")
    assert created < first_delta < names(events).index("thread.message.completed")
    run = wait_run(run.id)
    assert run.status == "completed"
    assert run.usage == {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    msg = Message.objects.get(run=run)
    assert msg.text == "Hi Alice!" and msg.status == "completed"
    step = RunStep.objects.get(run=run)
    assert step.type == "message_creation" and step.status == "completed"
    req = fake.requests()[0]
    assert req.messages[0] == {"role": "system", "content": "Be brief."}
    assert req.messages[-1] == {"role": "user", "content": "Hello there"}


def test_function_call_requires_action_then_completes(executor, alice, thread):
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    assistant = Assistant.objects.create(owner=alice, model="gpt-4o", tools=tools)
    fake.script(
        fake.tool_turn(("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')),
        fake.text_turn("Sunny in both."),
    )
    run = start_run(thread, assistant)
    events = collect_events(run.id)
    assert names(events)[-1] == "thread.run.requires_action"
    run = wait_run(run.id)
    calls = run.required_action["submit_tool_outputs"]["tool_calls"]  # type: ignore[index]
    assert [c["function"]["arguments"] for c in calls] == ['{"city": "Paris"}', '{"city": "Rome"}']
    with pytest.raises(errors.InvalidRequest) as err:
        submit_tool_outputs(run, [{"tool_call_id": calls[0]["id"], "output": "sunny"}])
    assert calls[1]["id"] in err.value.message
    with pytest.raises(errors.InvalidRequest) as err:
        submit_tool_outputs(run, [{"tool_call_id": "call_nope", "output": "x"}])
    assert "call_nope" in err.value.message
    from assistants_app.runs.events import get_event_log

    cursor = get_event_log().end_cursor(run.id)
    submit_tool_outputs(run, [{"tool_call_id": c["id"], "output": "sunny"} for c in calls])
    rest = collect_events(run.id, cursor)
    assert names(rest)[0] == "thread.run.queued"
    assert "thread.run.step.completed" in names(rest)
    assert names(rest)[-1] == "thread.run.completed"
    assert text_of(rest) == "Sunny in both."
    second = fake.requests()[1]
    assert second.messages[-3]["tool_calls"][1]["function"]["name"] == "get_weather"
    assert second.messages[-1] == {"role": "tool", "tool_call_id": calls[1]["id"], "content": "sunny"}
