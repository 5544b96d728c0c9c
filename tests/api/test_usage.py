"""Usage of runs that did not complete, through the official SDK against the real server: what the
model generated before a run was cancelled, failed or cut short is on the run and on its step,
counted with the tokenizer when the upstream sent no usage (OpenAI bills it)."""

from __future__ import annotations

import time
from typing import Any

import openai
import pytest

from assistants_app.runs.context import count_tokens
from tests.fakes.upstream import hang, malformed
from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]

PARTIAL = ("The answer ", "is forty ", "two, as ", "everyone knows")


@pytest.fixture(scope="module")
def client(live: LiveServer) -> openai.OpenAI:
    return live.client()


@pytest.fixture(scope="module")
def assistant(client: openai.OpenAI) -> Any:
    return client.beta.assistants.create(model="gpt-4o", instructions="Be brief.")


def _thread(client: openai.OpenAI) -> Any:
    return client.beta.threads.create(messages=[{"role": "user", "content": "What is the answer?"}])


def _wait(client: openai.OpenAI, thread_id: str, run_id: str, statuses: tuple[str, ...]) -> Any:
    deadline = time.monotonic() + 15
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in statuses:
            return run
        assert time.monotonic() < deadline, f"run still {run.status}"
        time.sleep(0.05)


def _usage(obj: Any) -> tuple[int, int, int]:
    assert obj.usage is not None
    return obj.usage.prompt_tokens, obj.usage.completion_tokens, obj.usage.total_tokens


def _steps(client: openai.OpenAI, thread_id: str, run_id: str) -> list[Any]:
    return list(client.beta.threads.runs.steps.list(run_id, thread_id=thread_id, order="asc"))


def test_cancelled_run_reports_what_was_generated(
    live: LiveServer, client: openai.OpenAI, assistant: Any
) -> None:
    live.upstream.script(hang(after=PARTIAL))
    thread = _thread(client)
    stream = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id, stream=True)
    run_id, streamed = "", ""
    for event in stream:
        if event.event == "thread.run.created":
            run_id = event.data.id
        if event.event == "thread.message.delta":
            streamed += event.data.delta.content[0].text.value  # type: ignore[union-attr, index, operator]
            if streamed == "".join(PARTIAL):
                client.beta.threads.runs.cancel(run_id, thread_id=thread.id)
    run = _wait(client, thread.id, run_id, ("cancelled",))
    prompt, completion, total = _usage(run)
    assert completion == count_tokens("".join(PARTIAL)) > 0
    assert prompt > 0 and total == prompt + completion
    (step,) = _steps(client, thread.id, run_id)
    assert step.status == "cancelled" and _usage(step) == (prompt, completion, total)


def test_run_failing_mid_stream_reports_what_was_generated(
    live: LiveServer, client: openai.OpenAI, assistant: Any
) -> None:
    live.upstream.script(malformed(after=PARTIAL))  # the stream breaks after the partial answer
    thread = _thread(client)
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    run = _wait(client, thread.id, run.id, ("failed", "completed"))
    assert run.status == "failed"
    prompt, completion, total = _usage(run)
    assert completion == count_tokens("".join(PARTIAL))
    assert prompt > 0 and total == prompt + completion
    (step,) = _steps(client, thread.id, run.id)
    assert step.status == "failed" and _usage(step) == (prompt, completion, total)


def test_run_cut_at_its_token_limit_reports_the_limit(
    live: LiveServer, client: openai.OpenAI, assistant: Any
) -> None:
    # An upstream that ignores max_tokens: the server stops it at the limit and says so.
    live.upstream.script(hang(after=[" word"] * 40))
    thread = _thread(client)
    run = client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=10
    )
    run = _wait(client, thread.id, run.id, ("incomplete", "completed", "failed"))
    assert run.status == "incomplete"
    prompt, completion, total = _usage(run)
    assert completion == 10 and prompt > 0
    (step,) = _steps(client, thread.id, run.id)
    assert _usage(step) == (prompt, completion, total)
