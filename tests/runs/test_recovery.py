"""Runs whose worker died: the lease runs out and a live executor ends or requeues them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from assistants_app import errors
from assistants_app.backends import fake
from assistants_app.models import Assistant, Message, Run, RunStep
from assistants_app.runs import state
from assistants_app.services.runs import cancel_run, start_run
from assistants_app.services.threads import create_thread, post_message
from tests.support.helpers import wait_run


@pytest.fixture
def queued_run(alice, event_log):
    thread = create_thread(alice)
    post_message(thread, role="user", content="hi")
    a = Assistant.objects.create(owner=alice, model="gpt-4o")
    return state.create_run(thread=thread, assistant=a, assistant_ref=a.id, model="gpt-4o")


@pytest.fixture
def start_executor(transactional_db, event_log):
    """Start the executor only once the dead worker's leftovers are in place (else it would
    simply claim the queued run first)."""
    from assistants_app.runs.executor import ThreadedExecutor

    started: list[ThreadedExecutor] = []
    yield lambda: started.append(ThreadedExecutor(concurrency=4).start())
    for ex in started:
        ex.stop()


def _die_mid_run(run: Run, *, streamed: bool, text: str = "") -> None:
    """What a SIGKILLed worker leaves behind: a claimed run, a partial checkpoint, a lapsing lease."""
    assert state.claim(run.id, "dead-worker") is not None
    if streamed:
        msg = Message.objects.create(
            thread_id=run.thread_id,
            role="assistant",
            run=run,
            status="in_progress",
            content=[{"type": "text", "text": {"value": text, "annotations": []}}],
        )
        RunStep.objects.create(
            run=run,
            thread_id_ref=run.thread_id,
            assistant_ref=run.assistant_ref,
            type="message_creation",
            step_details={"type": "message_creation", "message_creation": {"message_id": msg.id}},
        )
    Run.objects.filter(id=run.id).update(
        streamed=streamed, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )


@pytest.mark.django_db(transaction=True)
def test_streamed_run_of_dead_worker_fails_keeping_partial_text(queued_run, start_executor):
    _die_mid_run(queued_run, streamed=True, text="The answer is")
    start_executor()
    run = wait_run(queued_run.id, ("failed", "completed"))
    assert run.status == "failed"
    assert run.last_error["code"] == "server_error" and "lease" in run.last_error["message"]  # type: ignore[index]
    msg = Message.objects.get(run=run)
    assert msg.status == "incomplete" and msg.text == "The answer is"
    assert RunStep.objects.get(run=run).status == "failed"


@pytest.mark.django_db(transaction=True)
def test_unstreamed_run_of_dead_worker_is_retried(queued_run, start_executor):
    fake.script(fake.text_turn("second try"))
    _die_mid_run(queued_run, streamed=False)
    start_executor()
    run = wait_run(queued_run.id, ("failed", "completed"))
    assert run.status == "completed"
    assert run.attempts == 2
    assert Message.objects.get(run=run).text == "second try"


@pytest.mark.django_db(transaction=True)
def test_cancelling_run_of_dead_worker_is_cancelled(queued_run, start_executor):
    _die_mid_run(queued_run, streamed=True, text="partial")
    assert state.transition(queued_run.id, "cancelling", expected=["in_progress"]) is not None
    Run.objects.filter(id=queued_run.id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    start_executor()
    run = wait_run(queued_run.id, ("cancelled", "failed"))
    assert run.status == "cancelled"
    assert Message.objects.get(run=run).incomplete_details == {"reason": "run_cancelled"}


@pytest.mark.django_db(transaction=True)
def test_cancel_queued_and_requires_action_runs_directly(queued_run):
    run = cancel_run(queued_run)
    assert run.status == "cancelled" and run.cancelled_at is not None
    with pytest.raises(errors.InvalidRequest):
        cancel_run(run)


def test_thread_busy_while_run_active(queued_run):
    thread = queued_run.thread
    with pytest.raises(errors.ThreadBusy):
        post_message(thread, role="user", content="again")
    with pytest.raises(errors.ThreadBusy):
        start_run(thread, Assistant.objects.get(id=queued_run.assistant_ref))
