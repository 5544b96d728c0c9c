"""Issue 9, item 5: one user's flood of runs must not starve everyone else, and each user's queued +
active runs are capped (429 through the API, plain words on the chat page).

Claim order is asserted, never timing. Marked `engine`, so phase 2 runs them on PostgreSQL too.
"""

from __future__ import annotations

import json
import time

import pytest
from django.test import Client

from assistants_app.errors import TooManyActiveRuns
from assistants_app.models import Assistant, Run, Thread
from assistants_app.models.run import RunStatus
from assistants_app.runs import fairness, state
from assistants_app.services import keys
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread, post_message
from tests.support.helpers import wait_run


def _queue(user, assistant, n: int) -> list[Run]:
    runs = []
    for i in range(n):
        thread = create_thread(user)
        post_message(thread, role="user", content=f"question {i}")
        runs.append(start_run(thread, assistant))
    return runs


@pytest.fixture
def no_cap(settings):
    settings.RUN_MAX_ACTIVE_PER_USER = 0


def _drain_one_at_a_time(worker: str = "w1") -> list[str]:
    """A worker with one slot whose runs finish at once: the case where a first-come queue starves
    everyone behind a backlog, since the flooding owner never has a run in progress at claim time."""
    order: list[str] = []
    served: dict[int, float] = {}
    while True:
        candidates = fairness.queued_in_turn(2, served)
        if not candidates:
            return order
        for run_id, owner in candidates:
            if state.claim(run_id, worker) is not None:
                served.pop(owner, None)
                served[owner] = len(order)
                order.append(run_id)
                state.transition(run_id, RunStatus.COMPLETED, expected=[RunStatus.IN_PROGRESS], owner=worker)
                break


def test_another_owners_run_is_claimed_before_a_backlog_drains(alice, bob, staff, no_cap) -> None:
    a_assistant = Assistant.objects.create(owner=alice, model="m")
    b_assistant = Assistant.objects.create(owner=bob, model="m")
    flood = _queue(alice, a_assistant, 30)
    (b_run,) = _queue(bob, b_assistant, 1)
    order = _drain_one_at_a_time()
    assert len(order) == 31
    # Bob's run goes second: after the first of Alice's 30, not after all of them.
    assert order.index(b_run.id) == 1, order.index(b_run.id)
    # A third owner arriving mid-backlog is served next too.
    c_assistant = Assistant.objects.create(owner=staff, model="m")
    more = _queue(alice, a_assistant, 10)
    (c_run,) = _queue(staff, c_assistant, 1)
    order = _drain_one_at_a_time()
    assert order.index(c_run.id) <= 1 and len(order) == 11
    # Positive control: one owner's own runs still go oldest first.
    assert [r for r in order if r != c_run.id] == [r.id for r in more]
    assert all(Run.objects.get(id=r.id).status == "completed" for r in flood)


def test_owner_with_runs_executing_waits_behind_one_without(alice, bob, no_cap) -> None:
    a_assistant = Assistant.objects.create(owner=alice, model="m")
    b_assistant = Assistant.objects.create(owner=bob, model="m")
    flood = _queue(alice, a_assistant, 6)
    for run in flood[:3]:
        assert state.claim(run.id, "w") is not None  # Alice has three executing
    (b_run,) = _queue(bob, b_assistant, 1)
    ids = [run_id for run_id, _ in fairness.queued_in_turn(4)]
    assert ids[0] == b_run.id
    assert ids[1:] == [r.id for r in flood[3:]]


def test_real_executor_claims_fairly(alice, bob, transactional_db, event_log, no_cap) -> None:
    from assistants_app.runs.executor import ThreadedExecutor

    a_assistant = Assistant.objects.create(owner=alice, model="m")
    b_assistant = Assistant.objects.create(owner=bob, model="m")
    flood = _queue(alice, a_assistant, 12)
    (b_run,) = _queue(bob, b_assistant, 1)
    ex = ThreadedExecutor(concurrency=1).start()
    try:
        for run in [*flood, b_run]:
            wait_run(run.id, ("completed",), timeout=30)
    finally:
        ex.stop()
    started = sorted(Run.objects.filter(id__in=[r.id for r in [*flood, b_run]]), key=lambda r: r.started_at)  # type: ignore[arg-type, return-value]
    assert [r.id for r in started].index(b_run.id) <= 1


def test_a_run_ending_looks_at_the_queue_only_when_runs_were_left_waiting(
    alice, transactional_db, event_log, no_cap, settings, monkeypatch
) -> None:
    """Each run's end used to cost a fair-order query even with nothing queued; now only a look that
    left runs behind (no free slot) makes the next run end look again. Polls are off here (60 s), so
    a run left waiting that no run end picked up would time out."""
    from assistants_app.runs.executor import ThreadedExecutor

    settings.RUN_POLL_SECONDS = 60
    # Nudges from this process only: another process's (through Redis) would add looks this test
    # does not expect. test_nudges covers the Redis side.
    settings.REDIS_URL = ""
    looks: list[int] = []
    real = fairness.queued_in_turn

    def counted(limit: int, served: object = None) -> list[tuple[str, int]]:
        found = real(limit, served)  # type: ignore[arg-type]
        looks.append(len(found))
        return found

    monkeypatch.setattr(fairness, "queued_in_turn", counted)
    assistant = Assistant.objects.create(owner=alice, model="m")
    ex = ThreadedExecutor(concurrency=1).start()
    try:
        deadline = time.monotonic() + 10
        while not looks and time.monotonic() < deadline:  # the start-up look
            time.sleep(0.02)
        (alone,) = _queue(alice, assistant, 1)  # its nudge makes the executor look
        wait_run(alone.id, ("completed",))
        time.sleep(0.3)
        assert len(looks) == 2, looks  # start-up, the nudge: not the run's end

        backlog = _queue(alice, assistant, 3)  # one slot: two of them wait for a run to end
        for run in backlog:
            wait_run(run.id, ("completed",))
    finally:
        ex.stop()


# --- the per-user cap ---------------------------------------------------------------------------------
def test_run_cap_refuses_the_next_run_and_frees_up(alice, bob, settings) -> None:
    settings.RUN_MAX_ACTIVE_PER_USER = 3
    assistant = Assistant.objects.create(owner=alice, model="m")
    runs = _queue(alice, assistant, 3)
    thread = create_thread(alice)
    with pytest.raises(TooManyActiveRuns):
        start_run(thread, assistant)
    assert not Run.objects.filter(thread=thread).exists()
    # Another user is not affected by Alice's count.
    _queue(bob, Assistant.objects.create(owner=bob, model="m"), 1)
    # A finished run frees a place.
    state.transition(runs[0].id, RunStatus.CANCELLED, expected=[RunStatus.QUEUED])
    assert start_run(thread, assistant).status == "queued"


def test_run_cap_is_429_through_the_api_without_retry(alice, settings) -> None:
    settings.RUN_MAX_ACTIVE_PER_USER = 2
    raw = keys.create_key(alice).raw
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}")
    assistant = json.loads(
        client.post("/v1/assistants", {"model": "m"}, content_type="application/json").content
    )
    body = {"assistant_id": assistant["id"], "thread": {"messages": [{"role": "user", "content": "hi"}]}}
    for _ in range(2):
        ok = client.post("/v1/threads/runs", body, content_type="application/json")
        assert ok.status_code == 200, ok.content
    threads_before = Thread.objects.filter(owner=alice).count()
    refused = client.post("/v1/threads/runs", body, content_type="application/json")
    assert refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "too_many_active_runs" and error["type"] == "requests"
    assert "2 runs queued or in progress" in error["message"]
    assert refused["x-should-retry"] == "false"
    # create_and_run is atomic: the refused run left no thread behind.
    assert Thread.objects.filter(owner=alice).count() == threads_before


def test_run_cap_in_plain_words_on_the_chat_page(alice, settings) -> None:
    settings.RUN_MAX_ACTIVE_PER_USER = 1
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    chat_assistant = Assistant.objects.create(name="Helper", model="m", is_default=True)
    _queue(alice, Assistant.objects.create(owner=alice, model="m"), 1)  # e.g. through the API
    client = Client()
    client.force_login(alice)
    response = client.post("/chat/send/", {"text": "hello"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 429
    assert "replies in progress" in response.content.decode()
    assert not Run.objects.filter(assistant=chat_assistant).exists()
