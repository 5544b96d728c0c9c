"""SQLite write transactions queue on one lock of the process before SQLite's own (issue 13).

Before it, 1,000 chat sends at the same instant each waited in SQLite's busy handler (sleep and
retry, up to 100 ms apart, in random order) and 262 of them passed the 30 s timeout: "server is
busy". Now a thread that wants to write waits, asleep, on `_write_lock` until the writer before it
commits or rolls back, and no transaction is left holding it.
"""

from __future__ import annotations

import threading

import pytest
from django.db import OperationalError, connection, connections, transaction

from assistants_app.models import Assistant
from assistants_app.sqlite import base

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backend only")


def test_the_sqlite_database_uses_the_queued_backend() -> None:
    assert isinstance(connections["default"], base.DatabaseWrapper)
    assert connections["default"].settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"


def test_a_write_transaction_holds_the_lock_until_it_commits(transactional_db, alice) -> None:
    assert not base._write_lock.locked()
    with transaction.atomic():
        assert base._write_lock.locked()
        with transaction.atomic():  # a savepoint: the same transaction, the lock taken once
            Assistant.objects.create(owner=alice, model="m")
        assert base._write_lock.locked()
    assert not base._write_lock.locked()
    assert Assistant.objects.filter(owner=alice).count() == 1


def test_a_rolled_back_or_closed_transaction_releases_the_lock(transactional_db, alice) -> None:
    with pytest.raises(ValueError), transaction.atomic():
        Assistant.objects.create(owner=alice, model="m")
        raise ValueError
    assert not base._write_lock.locked()
    assert not Assistant.objects.filter(owner=alice).exists()
    with transaction.atomic():
        assert base._write_lock.locked()
        connection.close()  # e.g. a worker thread shutting down mid-transaction
    assert not base._write_lock.locked()


def test_a_second_writer_waits_for_the_first_then_goes(transactional_db, alice) -> None:
    started, written = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def second_writer() -> None:
        try:
            started.set()
            with transaction.atomic():
                Assistant.objects.create(owner=alice, model="second")
            written.set()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connections.close_all()

    with transaction.atomic():
        Assistant.objects.create(owner=alice, model="first")
        t = threading.Thread(target=second_writer)
        t.start()
        started.wait(5)
        # It cannot have written: it is queued behind this transaction (on the lock, not in SQLite).
        assert not written.wait(0.2)
    t.join(10)
    assert errors == [] and written.is_set()
    assert list(Assistant.objects.filter(owner=alice).order_by("id").values_list("model", flat=True)) == [
        "first",
        "second",
    ]


def test_a_writer_that_cannot_get_the_lock_in_time_gets_database_is_locked(
    transactional_db, monkeypatch
) -> None:
    db = connections["default"]
    monkeypatch.setitem(db.settings_dict, "OPTIONS", {**db.settings_dict["OPTIONS"], "timeout": 0.01})
    assert base._write_lock.acquire(timeout=5)  # another thread's transaction, as far as it knows
    try:
        with pytest.raises(OperationalError, match="database is locked"), transaction.atomic():
            pass
    finally:
        base._write_lock.release()
    with transaction.atomic():  # and the connection is still usable
        assert base._write_lock.locked()
    assert not base._write_lock.locked()
