"""Run expiry through the SDK, on a second server whose runs expire after RUN_EXPIRES_SECONDS=4."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from tests.fakes.upstream import hang, tool_calls
from tests.support.live_server import LiveServer

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


# Its own server (the `live` fixture, tests/conftest.py), started alongside the main one.
LIVE_SETTINGS = {"RUN_EXPIRES_SECONDS": "4"}


@pytest.fixture(scope="module")
def assistant(live: LiveServer) -> Any:
    tool = {
        "type": "function",
        "function": {"name": "slow", "parameters": {"type": "object", "properties": {}}},
    }
    return live.client().beta.assistants.create(model="gpt-4o", tools=[tool])  # type: ignore[list-item]


def test_unanswered_tool_call_expires(live: LiveServer, assistant: Any) -> None:
    client = live.client()
    live.upstream.script(tool_calls(("slow", "{}")))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    run = client.beta.threads.runs.create_and_poll(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "requires_action" and run.expires_at is not None
    call = run.required_action.submit_tool_outputs.tool_calls[0]  # type: ignore[union-attr]
    # Nobody answers: the reaper (on every executor heartbeat) expires the run.
    deadline = time.monotonic() + 20
    while run.status == "requires_action" and time.monotonic() < deadline:
        time.sleep(0.1)
        run = client.beta.threads.runs.retrieve(run.id, thread_id=thread.id)
    assert run.status == "expired" and run.expires_at is None
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run.id, thread_id=thread.id, tool_outputs=[{"tool_call_id": call.id, "output": "late"}]
        )
    step = client.beta.threads.runs.steps.list(run.id, thread_id=thread.id).data[0]
    assert step.status == "expired"
    # The thread is free again.
    client.beta.threads.messages.create(thread.id, role="user", content="still there?")


def test_streaming_run_that_hangs_ends_expired(live: LiveServer, assistant: Any) -> None:
    client = live.client()
    live.upstream.script(hang(after=("thinking",)))
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "go"}])
    started = time.monotonic()
    events = [
        e.event
        for e in client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True)
    ]
    assert events[-1] == "thread.run.expired"
    assert "thread.message.incomplete" in events
    assert time.monotonic() - started < 20
    msg = client.beta.threads.messages.list(thread.id).data[0]
    assert msg.status == "incomplete" and msg.incomplete_details.reason == "run_expired"  # type: ignore[union-attr]
    assert msg.content[0].text.value == "thinking"  # type: ignore[union-attr]
