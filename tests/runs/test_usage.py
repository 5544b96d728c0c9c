"""Usage of runs that did not complete: what the model generated before a run was cancelled, failed,
expired or cut at its token limit is counted on the run and its steps (the upstream bills it), by
the tokenizer when the upstream sent no usage. The chat page and the API share this code: the
chat's Stop goes through the same engine path as the API's cancel."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from assistants_app.backends import fake
from assistants_app.backends.base import BackendError, TextDelta, ToolCallDelta
from assistants_app.models import Assistant, Message, Run, RunStep
from assistants_app.runs.context import count_tokens
from assistants_app.services import chat
from assistants_app.services.runs import cancel_run, start_run
from assistants_app.services.threads import create_thread, post_message
from tests.support.helpers import wait_run

pytestmark = pytest.mark.django_db(transaction=True)

PARTIAL = ["The answer", " is forty", " two, as", " everyone knows"]


@pytest.fixture
def assistant(alice):
    return Assistant.objects.create(owner=alice, model="gpt-4o", instructions="Be brief.")


@pytest.fixture
def thread(alice):
    t = create_thread(alice)
    post_message(t, role="user", content="What is the answer?")
    return t


def _wait_text(run_id: str, text: str, timeout: float = 15) -> None:
    """Until the partial text is checkpointed: every delta has then reached the engine."""
    deadline = timezone.now() + timedelta(seconds=timeout)
    while timezone.now() < deadline:
        msg = Message.objects.filter(run_id=run_id).first()
        if msg is not None and msg.text == text:
            return
    raise AssertionError(f"the text of run {run_id} never became {text!r}")


def _usage(prompt: int, completion: int) -> dict[str, int]:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _step_usages(run: Run) -> list[dict[str, int] | None]:
    return [s.usage for s in RunStep.objects.filter(run=run).order_by("id")]


def test_a_cancelled_run_counts_what_was_generated(executor, assistant, thread) -> None:
    fake.script(fake.Turn([TextDelta(t) for t in PARTIAL], hang=True))
    run = start_run(thread, assistant)
    _wait_text(run.id, "".join(PARTIAL))
    cancel_run(Run.objects.get(id=run.id))
    run = wait_run(run.id, ("cancelled",))
    generated = count_tokens("".join(PARTIAL))
    assert generated > 0
    assert run.usage["completion_tokens"] == generated  # type: ignore[index]
    assert run.usage["prompt_tokens"] > 0  # type: ignore[index]  # the prompt was sent and read
    assert run.usage["total_tokens"] == run.usage["prompt_tokens"] + generated  # type: ignore[index]
    # The step that carried the text reports the same figures (one model call, one step).
    assert _step_usages(run) == [run.usage]
    assert RunStep.objects.get(run=run).status == "cancelled"


def test_the_chat_stop_counts_the_same_way(executor, alice) -> None:
    Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True)
    fake.script(fake.Turn([TextDelta(t) for t in PARTIAL], hang=True))
    _, run = chat.send(alice, "What is the answer?")
    _wait_text(run.id, "".join(PARTIAL))
    chat.stop(alice, run.id)
    run = wait_run(run.id, ("cancelled",))
    assert run.usage["completion_tokens"] == count_tokens("".join(PARTIAL))  # type: ignore[index]
    assert run.usage["prompt_tokens"] > 0  # type: ignore[index]


def test_a_run_failing_mid_stream_counts_what_was_generated(executor, assistant, thread) -> None:
    fake.script(fake.Turn([*[TextDelta(t) for t in PARTIAL], BackendError("server_error", "boom")]))
    run = start_run(thread, assistant)
    run = wait_run(run.id, ("failed", "completed"))
    assert run.status == "failed"
    generated = count_tokens("".join(PARTIAL))
    assert run.usage["completion_tokens"] == generated  # type: ignore[index]
    assert run.usage["prompt_tokens"] > 0  # type: ignore[index]
    assert _step_usages(run) == [run.usage]


def test_a_run_failing_before_any_output_counts_nothing(executor, assistant, thread) -> None:
    # The upstream refused the request: nothing was generated, nothing is billed.
    fake.script(fake.Turn([BackendError("server_error", "refused")]))
    run = start_run(thread, assistant)
    run = wait_run(run.id, ("failed", "completed"))
    assert run.status == "failed"
    assert run.usage == _usage(0, 0)


def test_an_expired_run_counts_what_was_generated(executor, settings, assistant, thread) -> None:
    settings.RUN_EXPIRES_SECONDS = 1  # the run's expires_at, set when it is created
    fake.script(fake.Turn([TextDelta(t) for t in PARTIAL], hang=True))
    run = start_run(thread, assistant)
    run = wait_run(run.id, ("expired", "completed", "failed"))
    assert run.status == "expired"
    assert run.usage["completion_tokens"] == count_tokens("".join(PARTIAL))  # type: ignore[index]
    assert _step_usages(run) == [run.usage]


def test_local_token_limit_counts_on_the_run_and_the_step(executor, assistant, thread) -> None:
    # An upstream that ignores max_tokens is cut at the limit; the step says so too.
    fake.script(fake.Turn([TextDelta(" word")] * 40, hang=True))
    run = start_run(thread, assistant, max_completion_tokens=10)
    run = wait_run(run.id, ("incomplete", "completed", "failed"))
    assert run.status == "incomplete"
    assert run.usage["completion_tokens"] == 10  # type: ignore[index]
    assert _step_usages(run) == [run.usage]


def test_tool_call_arguments_count_when_the_run_is_cancelled(executor, alice, thread) -> None:
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object"}}}]
    asst = Assistant.objects.create(owner=alice, model="gpt-4o", tools=tools)
    args = '{"query": "the answer to everything"}'
    fake.script(
        fake.Turn(
            [ToolCallDelta(0, id="call_1", name="lookup", arguments=""), ToolCallDelta(0, arguments=args)],
            hang=True,
        )
    )
    run = start_run(thread, asst)
    deadline = timezone.now() + timedelta(seconds=15)
    while not RunStep.objects.filter(run_id=run.id, type="tool_calls").exists():
        assert timezone.now() < deadline, "the tool step never appeared"
    cancel_run(Run.objects.get(id=run.id))
    run = wait_run(run.id, ("cancelled",))
    assert run.usage["completion_tokens"] == count_tokens(args)  # type: ignore[index]
    assert _step_usages(run) == [run.usage]
