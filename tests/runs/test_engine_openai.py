"""End-to-end runs through the OpenAI-compatible backend against a fake upstream over real HTTP/SSE."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from assistants_app.models import Assistant, Message, Run, RunStep
from assistants_app.services.runs import cancel_run, start_run, submit_tool_outputs
from assistants_app.services.threads import create_thread, post_message
from tests.fakes import upstream as up_
from tests.support.helpers import collect_events, names, text_of, wait_run

WEATHER = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Weather for a city",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    }
]


@pytest.fixture
def upstream(settings):
    with up_.FakeUpstream() as up:
        settings.MODEL_BACKEND = "openai"
        settings.OPENAI_BASE_URL = up.base_url
        settings.OPENAI_API_KEY = "test-key"
        settings.UPSTREAM_STALL_TIMEOUT = 0.5
        settings.UPSTREAM_MAX_RETRIES = 2
        yield up


@pytest.fixture
def thread(alice):
    t = create_thread(alice)
    post_message(t, role="user", content="What's the weather?")
    return t


@pytest.fixture
def assistant(alice):
    return Assistant.objects.create(owner=alice, model="gpt-4o", instructions="You help.", tools=WEATHER)


def test_streamed_text(executor, upstream, thread, assistant):
    upstream.script(up_.text("It ", "is ", "sunny.", delay=0.01, usage=(30, 4)))
    run = start_run(thread, assistant, temperature=0.2)
    events = collect_events(run.id)
    assert names(events)[-1] == "thread.run.completed"
    assert text_of(events) == "It is sunny."
    assert events[-1].data["usage"] == {"prompt_tokens": 30, "completion_tokens": 4, "total_tokens": 34}
    body = upstream.requests[0]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["temperature"] == 0.2 and body["tools"][0]["function"]["name"] == "get_weather"
    assert body["messages"][0] == {"role": "system", "content": "You help."}


def test_function_call_round_trip_with_parallel_calls(executor, upstream, thread, assistant):
    upstream.script(
        up_.tool_calls(("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Oslo"}')),
        up_.text("Paris sunny, Oslo snowy."),
    )
    run = start_run(thread, assistant)
    events = collect_events(run.id)
    assert names(events)[-1] == "thread.run.requires_action"
    assert names(events).index("thread.run.step.created") < names(events).index("thread.run.step.delta")
    run = Run.objects.get(id=run.id)
    calls = run.required_action["submit_tool_outputs"]["tool_calls"]  # type: ignore[index]
    assert [c["function"]["arguments"] for c in calls] == ['{"city": "Paris"}', '{"city": "Oslo"}']
    submit_tool_outputs(
        run, [{"tool_call_id": c["id"], "output": o} for c, o in zip(calls, ["sunny", "snowy"], strict=True)]
    )
    run = wait_run(run.id, ("completed", "failed"))
    assert run.status == "completed", run.last_error
    tool_msgs = [m for m in upstream.requests[1]["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_msgs] == ["sunny", "snowy"]
    step = RunStep.objects.get(run=run, type="tool_calls")
    assert step.status == "completed"
    assert [c["function"]["output"] for c in step.step_details["tool_calls"]] == ["sunny", "snowy"]


def test_server_error_then_success_is_retried(executor, upstream, thread, assistant):
    upstream.script(up_.error(500, "boom"), up_.text("Recovered."))
    run = start_run(thread, assistant)
    run = wait_run(run.id, ("completed", "failed"))
    assert run.status == "completed"
    assert Message.objects.get(run=run).text == "Recovered."
    assert len(upstream.requests) == 2


def test_rate_limited_throughout_fails(executor, upstream, thread, assistant):
    upstream.script(*[up_.error(429, "slow down", type_="rate_limit_error") for _ in range(3)])
    run = start_run(thread, assistant)
    run = wait_run(run.id, ("completed", "failed"))
    assert run.status == "failed"
    assert run.last_error["code"] == "rate_limit_exceeded"  # type: ignore[index]
    assert len(upstream.requests) == 3


@pytest.mark.parametrize("reply", [up_.hang(after=["partial "]), up_.malformed(after=["partial "])])
def test_stalled_or_malformed_upstream_fails_keeping_partial_text(
    executor, upstream, thread, assistant, reply
):
    upstream.script(reply)
    run = start_run(thread, assistant)
    run = wait_run(run.id, ("completed", "failed"))
    assert run.status == "failed" and run.last_error["code"] == "server_error"  # type: ignore[index]
    msg = Message.objects.get(run=run)
    assert msg.status == "incomplete" and msg.incomplete_details == {"reason": "run_failed"}
    assert msg.text == "partial "


def test_cancel_mid_stream_closes_upstream_and_keeps_partial(executor, upstream, thread, assistant):
    upstream.script(up_.hang(after=["Once ", "upon "]))
    run = start_run(thread, assistant)
    events = collect_events(run.id, until={"thread.message.delta"})
    while text_of(events) != "Once upon ":
        events += collect_events(run.id, events[-1].cursor, until={"thread.message.delta"})
    cancel_run(Run.objects.get(id=run.id))
    rest = collect_events(run.id, events[-1].cursor)
    assert names(rest)[-1] == "thread.run.cancelled"
    assert "thread.message.incomplete" in names(rest)
    assert upstream.wait_closed_early(1, timeout=5)
    msg = Message.objects.get(run_id=run.id)
    assert msg.status == "incomplete" and msg.text == "Once upon "
    assert msg.incomplete_details == {"reason": "run_cancelled"}


def test_expiry_mid_stream(executor, upstream, settings, thread, assistant):
    settings.UPSTREAM_STALL_TIMEOUT = 30
    upstream.script(up_.hang(after=["Slow "]))
    with transaction.atomic():  # the executor must not see the run before its short expiry is set
        run = start_run(thread, assistant)
        Run.objects.filter(id=run.id).update(expires_at=timezone.now() + timedelta(seconds=1))
    run = wait_run(run.id, ("expired", "failed", "completed"))
    assert run.status == "expired"
    msg = Message.objects.get(run=run)
    assert msg.status == "incomplete" and msg.text == "Slow "
    assert msg.incomplete_details == {"reason": "run_expired"}


def test_requires_action_expires_when_nobody_answers(executor, upstream, thread, assistant):
    upstream.script(up_.tool_calls(("get_weather", '{"city": "Rome"}')))
    run = start_run(thread, assistant)
    wait_run(run.id, ("requires_action",))
    Run.objects.filter(id=run.id).update(expires_at=timezone.now() - timedelta(seconds=1))
    run = wait_run(run.id, ("expired",))
    assert run.status == "expired"
    assert RunStep.objects.get(run=run).status == "expired"


def test_length_finish_makes_run_incomplete(executor, upstream, thread, assistant):
    upstream.script(up_.length("cut ", "off"))
    run = start_run(thread, assistant, max_completion_tokens=50)
    run = wait_run(run.id, ("completed", "incomplete", "failed"))
    assert run.status == "incomplete"
    assert run.incomplete_details == {"reason": "max_completion_tokens"}
    assert upstream.requests[0]["max_tokens"] == 50
    msg = Message.objects.get(run=run)
    assert msg.status == "incomplete" and msg.text == "cut off"


def test_max_completion_tokens_enforced_locally(executor, upstream, thread, assistant):
    # An upstream that ignores max_tokens is still stopped at the limit.
    upstream.script(up_.hang(after=[" word"] * 40))
    run = start_run(thread, assistant, max_completion_tokens=10)
    run = wait_run(run.id, ("completed", "incomplete", "failed"))
    assert run.status == "incomplete"
    assert run.usage["completion_tokens"] == 10  # type: ignore[index]


def test_no_model_configured_fails_with_operator_message(executor, settings, thread, assistant):
    settings.MODEL_BACKEND = "openai"
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    run = start_run(thread, assistant)
    run = wait_run(run.id, ("failed", "completed"))
    assert run.status == "failed"
    assert "OPENAI_BASE_URL" in run.last_error["message"]  # type: ignore[index]
