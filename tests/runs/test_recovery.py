"""Runs whose worker died: the lease runs out and a live executor ends or requeues them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

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


def _event_names(run_id: str) -> list[str]:
    """What a reader that stops at the run's terminal event gets."""
    from assistants_app.runs.events import TERMINAL_RUN_EVENTS
    from tests.support.helpers import collect_events

    return [ev.event for ev in collect_events(run_id, until=TERMINAL_RUN_EVENTS)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("ending", ["lease_lost", "cancelling", "expired"])
def test_a_recovered_run_announces_its_message_end_before_its_own(queued_run, ending):
    """A reader stops at the run's terminal event (the chat page's socket, SDK streams): the message
    and step it closed must come before it, as OpenAI orders them. Before, a recovered run's
    thread.run.failed came first, and a page that reconnected after a restart kept its reply
    "streaming" forever (phase 2: the event log survives the restart)."""
    from assistants_app.runs import recovery

    _die_mid_run(queued_run, streamed=True, text="The answer is")
    if ending == "cancelling":
        Run.objects.filter(id=queued_run.id).update(status="cancelling")
    if ending == "expired":
        Run.objects.filter(id=queued_run.id).update(expires_at=timezone.now() - timedelta(seconds=1))
        assert recovery.expire_overdue() == 1
    else:
        assert recovery.reap_lost() == 1
    names = _event_names(queued_run.id)
    terminal = {
        "lease_lost": "thread.run.failed",
        "cancelling": "thread.run.cancelled",
        "expired": "thread.run.expired",
    }
    step_end = {"lease_lost": "failed", "cancelling": "cancelled", "expired": "expired"}[ending]
    assert names[-3:] == ["thread.message.incomplete", f"thread.run.step.{step_end}", terminal[ending]]


@pytest.mark.django_db(transaction=True)
def test_cancelling_a_waiting_run_ends_its_tool_step_before_the_run(queued_run):
    assert state.claim(queued_run.id, "w") is not None
    RunStep.objects.create(
        run=queued_run,
        thread_id_ref=queued_run.thread_id,
        assistant_ref=queued_run.assistant_ref,
        type="tool_calls",
        step_details={"type": "tool_calls", "tool_calls": []},
    )
    action = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": []}}
    assert state.transition(queued_run.id, "requires_action", fields={"required_action": action}) is not None
    cancel_run(Run.objects.get(id=queued_run.id))
    assert _event_names(queued_run.id)[-2:] == ["thread.run.step.cancelled", "thread.run.cancelled"]


@pytest.mark.django_db(transaction=True)
def test_shutdown_keeps_the_text_streamed_since_the_last_checkpoint(queued_run, settings) -> None:
    """A graceful stop (deploy, Ctrl-C) cancels the run's task: the text that streamed after the last
    checkpoint is saved first, so the recovery after the restart closes the message with all of it."""
    import time

    from assistants_app.backends.base import TextDelta
    from assistants_app.runs.executor import ThreadedExecutor

    settings.RUN_CHECKPOINT_SECONDS = 60  # no checkpoint would save it in time
    fake.script(fake.Turn([TextDelta("The answer"), TextDelta(" is 42")], hang=True))
    ex = ThreadedExecutor(concurrency=2).start()
    try:
        deadline = time.monotonic() + 10
        while not Message.objects.filter(run_id=queued_run.id).exists():
            assert time.monotonic() < deadline, "the run never opened its message"
            time.sleep(0.02)
        time.sleep(0.3)  # both deltas are streamed; the turn now hangs
        assert Message.objects.get(run_id=queued_run.id).text == ""  # only the checkpoint would save it
    finally:
        ex.stop()
    msg = Message.objects.get(run_id=queued_run.id)
    assert msg.status == "in_progress" and msg.text == "The answer is 42"
    run = Run.objects.get(id=queued_run.id)
    assert run.status == "in_progress"
    assert run.lease_expires_at is not None and run.lease_expires_at < timezone.now()  # released for recovery


def test_an_idle_executor_recovers_every_third_of_a_lease_not_every_beat(monkeypatch, settings) -> None:
    """Recovery was an idle server's main cost once per second; a third of a lease period is enough."""
    import asyncio

    from assistants_app.runs import executor as executor_module
    from assistants_app.runs import recovery

    settings.RUN_LEASE_SECONDS = 30
    calls: list[str] = []
    real_beat_sync = executor_module._beat_sync

    def recover() -> int:
        calls.append("recover")
        return 0

    def beat_sync(*args: Any) -> tuple[set[str], set[str]]:
        calls.append("trip")
        return real_beat_sync(*args)

    monkeypatch.setattr(recovery, "recover", recover)
    monkeypatch.setattr(executor_module, "_beat_sync", beat_sync)
    ex = executor_module.Executor(worker_id="w", concurrency=1)

    asyncio.run(ex._beat())
    assert calls == []  # just started (start-up recovered), nothing running: no trip to a thread

    ex._recovered_at -= 9
    asyncio.run(ex._beat())
    assert calls == []  # 9 s < 10 s

    ex._recovered_at -= 2
    asyncio.run(ex._beat())
    assert calls == ["trip", "recover"]
    asyncio.run(ex._beat())
    assert calls == ["trip", "recover"]  # the clock restarted


@pytest.mark.django_db(transaction=True)
def test_a_busy_executor_renews_leases_every_third_of_a_lease_and_sees_cancels_every_beat(
    queued_run, monkeypatch, settings
) -> None:
    """A beat was three queries a second while anything ran (renew, which are held, which are
    cancelling); the lease needs renewing only every third of its length."""
    import asyncio

    from assistants_app.runs import executor as executor_module

    settings.RUN_LEASE_SECONDS = 30
    claimed = state.claim(queued_run.id, "w")
    assert claimed is not None and claimed.lease_expires_at is not None
    renewals: list[list[str]] = []
    real_renew = state.renew_leases

    def renew(worker_id: str, ids: list[str]) -> None:
        renewals.append(list(ids))
        real_renew(worker_id, ids)

    monkeypatch.setattr(state, "renew_leases", renew)
    ex = executor_module.Executor(worker_id="w", concurrency=1)
    ex.running[claimed.id] = (None, None)  # type: ignore[assignment]
    cancelled: list[str] = []
    monkeypatch.setattr(ex, "_cancel_local", cancelled.append)

    asyncio.run(ex._beat())
    assert renewals == [[claimed.id]]  # the first beat renews
    renewed = Run.objects.get(id=claimed.id).lease_expires_at
    assert renewed is not None and renewed > claimed.lease_expires_at
    asyncio.run(ex._beat())
    assert renewals == [[claimed.id]]  # a second later: not yet due
    ex._renewed_at -= 11
    asyncio.run(ex._beat())
    assert len(renewals) == 2

    Run.objects.filter(id=claimed.id).update(status="cancelling")  # cancelled from another process
    asyncio.run(ex._beat())
    assert cancelled == [claimed.id]  # seen on the next beat, with no renewal due
    assert len(renewals) == 2

    Run.objects.filter(id=claimed.id).update(lease_owner="w2")  # reaped and taken by another worker
    asyncio.run(ex._beat())
    assert ex.executions == {} and cancelled == [claimed.id]  # not held any more: no cancel of its run
