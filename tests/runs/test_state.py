"""The run status machine: every legal and illegal transition, and racing claims."""

from __future__ import annotations

import threading

import pytest

from assistants_app.models import Assistant, Run
from assistants_app.models.run import ACTIVE_STATUSES, TERMINAL_STATUSES
from assistants_app.runs import state
from assistants_app.services.threads import create_thread

ALL = list(ACTIVE_STATUSES) + list(TERMINAL_STATUSES)
LEGAL = {(s, t) for s, targets in state.ALLOWED.items() for t in targets}


@pytest.fixture
def make_run(alice, event_log):
    assistant = Assistant.objects.create(owner=alice, model="gpt-4o")

    def make(status: str) -> Run:
        thread = create_thread(alice)
        run = state.create_run(thread=thread, assistant=assistant, assistant_ref=assistant.id, model="gpt-4o")
        Run.objects.filter(id=run.id).update(status=status)  # test setup only
        return run

    return make


def test_the_machine_is_the_documented_one() -> None:
    assert state.ALLOWED["queued"] == {"in_progress", "cancelled", "failed", "expired"}
    assert state.ALLOWED["requires_action"] == {"queued", "cancelled", "failed", "expired"}
    assert state.ALLOWED["cancelling"] == {"cancelled", "failed", "expired"}
    for terminal in TERMINAL_STATUSES:
        assert state.ALLOWED[terminal] == frozenset()


@pytest.mark.parametrize("source", ALL)
@pytest.mark.parametrize("target", ALL)
def test_transition(
    make_run, event_log, django_capture_on_commit_callbacks, source: str, target: str
) -> None:
    run = make_run(source)
    cursor = event_log.end_cursor(run.id)
    if (source, target) in LEGAL:
        with django_capture_on_commit_callbacks(execute=True):
            moved = state.transition(run.id, target, expected=[source])
        assert moved is not None and moved.status == target
        assert Run.objects.get(id=run.id).status == target
        published = event_log.end_cursor(run.id)
        assert published != cursor  # thread.run.<target> went out
    else:
        with pytest.raises(state.IllegalTransition):
            state.transition(run.id, target, expected=[source])
        assert Run.objects.get(id=run.id).status == source


def test_stale_expectation_loses_without_writing(make_run) -> None:
    run = make_run("completed")
    assert state.transition(run.id, "in_progress", expected=["queued"]) is None
    assert Run.objects.get(id=run.id).status == "completed"


def test_terminal_timestamps_and_lease_cleared(make_run) -> None:
    run = make_run("queued")
    claimed = state.claim(run.id, "w1")
    assert (
        claimed is not None and claimed.lease_owner == "w1" and claimed.started_at and claimed.attempts == 1
    )
    done = state.transition(run.id, "completed")
    assert (
        done is not None
        and done.completed_at is not None
        and done.lease_owner == ""
        and done.lease_expires_at is None
    )


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_for_one_run_exactly_one_wins(make_run) -> None:
    for _ in range(10):
        run = make_run("queued")
        barrier = threading.Barrier(4)
        wins: list[str] = []

        def worker(name: str, run_id: str, barrier: threading.Barrier, wins: list[str]) -> None:
            from django.db import connection

            barrier.wait()
            try:
                if state.claim(run_id, name) is not None:
                    wins.append(name)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker, args=(f"w{i}", run.id, barrier, wins)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(wins) == 1
        assert Run.objects.get(id=run.id).lease_owner == wins[0]


def test_ids_sort_bytewise_on_postgresql(db, postgres) -> None:
    """Pagination and "newest first" order by id: on PostgreSQL id columns must not follow a
    locale collation (where 'a' < 'Z'), whatever the database's default is."""
    from django.db import connection

    with connection.cursor() as cur:
        cur.execute(
            "SELECT table_name, column_name, collation_name FROM information_schema.columns "
            "WHERE table_name LIKE 'assistants_app_%%' AND column_name IN ('id', 'thread_id', 'run_id') "
            "AND data_type = 'character varying'"
        )
        rows = cur.fetchall()
    assert len(rows) >= 8
    assert all(collation == "C" for _, _, collation in rows), rows


def test_a_claimed_run_comes_with_its_thread(make_run, django_assert_num_queries) -> None:
    """The engine saves the run's messages with the thread at hand, so an API thread's reply costs no
    search-index query; claiming loads it in the same SELECT as the run."""
    run = make_run("queued")
    claimed = state.claim(run.id, "w1")
    assert claimed is not None
    with django_assert_num_queries(0):
        assert claimed.thread.is_chat is False
