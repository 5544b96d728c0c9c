"""Django's SQLite backend, with the process's write transactions queued on one lock.

Every transaction here is `BEGIN IMMEDIATE` (settings: the write lock is taken up front, so a
deferred transaction never fails upgrading). When many threads want it at once (1,000 chat sends
at the same instant: each request runs its view on a thread of its own), SQLite's busy handler
makes the losers sleep and retry, up to 100 ms apart, whoever retries at the right moment wins:
the order is random, the lock sits free between a commit and the next lucky retry, and some
waiters pass the 30 s timeout ("server is busy"). Waiting on a lock of the process's own first
hands the write lock over in order, at once, with the waiters asleep. Other processes
(`manage.py` commands, a second server) still meet SQLite's busy handler as before.

Connections are also reused across threads instead of being opened per request (idle.py).
"""

from __future__ import annotations

import sqlite3
import threading
from typing import Any

from django.db import OperationalError
from django.db.backends.sqlite3 import base

from . import idle

_write_lock = threading.Lock()


# django-stubs declares none of the private hooks overridden below, hence the ignores on their calls.
class DatabaseWrapper(base.DatabaseWrapper):
    _holds_write_lock = False
    _idle_key: idle.Key | None = None

    def get_new_connection(self, conn_params: dict[str, Any]) -> sqlite3.Connection:
        conn, self._idle_key = idle.take(str(conn_params.get("database", "")))
        if conn is None:
            return super().get_new_connection(conn_params)  # type: ignore[no-any-return]
        # The one setting a user may have changed and not put back (the schema editor turns it off).
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    def _start_transaction_under_autocommit(self) -> None:
        # The same bound as SQLite's own wait (OPTIONS "timeout"): past it, "database is locked".
        timeout = float(self.settings_dict.get("OPTIONS", {}).get("timeout", 5))
        if not self._holds_write_lock:
            if not _write_lock.acquire(timeout=timeout):
                raise OperationalError("database is locked (waited for this process's other writers)")
            self._holds_write_lock = True
        try:
            super()._start_transaction_under_autocommit()  # type: ignore[misc]
        except BaseException:
            self._release_write_lock()
            raise

    def _release_write_lock(self) -> None:
        if self._holds_write_lock:
            self._holds_write_lock = False
            _write_lock.release()

    def _commit(self) -> None:
        try:
            super()._commit()  # type: ignore[misc]
        finally:
            if self.connection is None or not self.connection.in_transaction:
                self._release_write_lock()

    def _rollback(self) -> None:
        try:
            super()._rollback()  # type: ignore[misc]
        finally:
            self._release_write_lock()

    def _close(self) -> None:
        try:
            # Closed inside atomic(), the wrapper keeps pointing at the connection until the block
            # ends: it must not be in another thread's hands by then.
            if (
                self.connection is None
                or self.in_atomic_block
                or not idle.give(self._idle_key, self.connection)
            ):
                super()._close()  # type: ignore[misc]
        finally:
            self._idle_key = None
            self._release_write_lock()
