"""SQLite connections are reused across threads instead of opened per request (issue 13).

Each request runs on a thread of its own, so it opened the database (pragmas, Django's SQL
functions, the schema) and closed it again: ~1 ms of CPU per request. A closed connection now waits
in `idle` for the next thread, rolled back, and never while another wrapper can still reach it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.db import connection, connections, transaction

from assistants_app.models import Assistant
from assistants_app.sqlite import base, idle

pytestmark = pytest.mark.skipif(connection.vendor != "sqlite", reason="the SQLite backend only")


def _in_thread[R](fn: Callable[[], R]) -> R:
    """`fn()` on a new thread, as a request's view runs, and that thread's connections closed after."""
    out: list[Any] = []

    def main() -> None:
        try:
            out.append(fn())
        except BaseException as exc:  # pragma: no cover - re-raised below
            out.append(exc)
        finally:
            connections.close_all()

    t = threading.Thread(target=main)
    t.start()
    t.join(10)
    if isinstance(out[0], BaseException):  # pragma: no cover
        raise out[0]
    return out[0]  # type: ignore[no-any-return]


def _raw() -> sqlite3.Connection:
    connections["default"].ensure_connection()
    return connections["default"].connection  # type: ignore[no-any-return]


def test_a_closed_connection_is_what_the_next_thread_gets(transactional_db, alice) -> None:
    name = connections["default"].settings_dict["NAME"]
    first = _in_thread(lambda: (Assistant.objects.create(owner=alice, model="m"), _raw())[1])
    assert idle.count(name) >= 1
    second = _in_thread(lambda: (Assistant.objects.filter(owner=alice).count(), _raw()))
    assert second == (1, first)  # the same sqlite3 connection, and it works


def test_a_connection_closed_mid_transaction_comes_back_rolled_back(transactional_db, alice) -> None:
    def write_and_leave() -> sqlite3.Connection:
        db = connections["default"]
        db.ensure_connection()
        raw = _raw()
        raw.execute("BEGIN IMMEDIATE")
        raw.execute("UPDATE assistants_app_assistant SET model = 'changed'")
        assert raw.in_transaction
        return raw

    Assistant.objects.create(owner=alice, model="m")
    raw = _in_thread(write_and_leave)  # the thread's close_all() ends it without a commit
    assert not raw.in_transaction
    assert _in_thread(lambda: (Assistant.objects.get().model, _raw())) == ("m", raw)
    assert not base._write_lock.locked()


def test_a_connection_closed_inside_atomic_is_really_closed(transactional_db) -> None:
    db = connections["default"]
    with transaction.atomic():
        raw = _raw()
        before = idle.count()
        db.close()  # the wrapper still points at it until the block ends
    assert idle.count() == before
    with pytest.raises(sqlite3.ProgrammingError):
        raw.execute("SELECT 1")


def test_a_replaced_database_file_never_gets_an_old_connection(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite3")
    old = sqlite3.connect(path, check_same_thread=False)
    old.execute("CREATE TABLE t (x)")
    conn, key = idle.take(path)
    assert conn is None and key is not None
    assert idle.give(key, old)
    Path(path).unlink()
    sqlite3.connect(path).close()  # a new file under the same name
    conn, new_key = idle.take(path)
    assert conn is None and new_key != key
    assert idle.count(path) == 0  # the old file's connection was closed, not kept
    with pytest.raises(sqlite3.ProgrammingError):
        old.execute("SELECT 1")


def test_no_more_than_max_idle_are_kept(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(idle, "MAX_IDLE", 2)
    path = str(tmp_path / "db.sqlite3")
    sqlite3.connect(path).close()
    _, key = idle.take(path)
    conns = [sqlite3.connect(path, check_same_thread=False) for _ in range(3)]
    assert [idle.give(key, c) for c in conns] == [True, True, False]
    assert idle.count(path) == 2
    idle.close_all()
    assert idle.count(path) == 0


def test_memory_databases_and_missing_files_are_never_kept(tmp_path: Path) -> None:
    assert idle.key_of(":memory:") is None
    assert idle.key_of("file:memorydb?mode=memory&cache=shared") is None
    assert idle.key_of(str(tmp_path / "missing.sqlite3")) is None
    assert not idle.give(None, sqlite3.connect(":memory:"))


def test_a_forked_child_never_uses_its_parents_connections(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite3")
    sqlite3.connect(path).close()
    _, key = idle.take(path)
    conn = sqlite3.connect(path, check_same_thread=False)
    assert idle.give(key, conn)
    idle._after_fork_in_child()  # what os.fork() runs in the child
    assert idle.take(path)[0] is None
    conn.execute("SELECT 1")  # not closed: it is the parent's
