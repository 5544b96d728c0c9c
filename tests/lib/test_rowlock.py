"""lib/rowlock: FOR UPDATE where the database has row locks, nothing where the transaction already
holds the whole database's write lock (SQLite, IMMEDIATE)."""

from __future__ import annotations

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from assistants_app.lib import rowlock
from assistants_app.models import Thread
from assistants_app.services.threads import create_thread


@pytest.mark.django_db(transaction=True)
def test_lock_is_a_for_update_select_only_where_rows_can_be_locked(alice) -> None:
    thread = create_thread(alice)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        rowlock.lock(Thread.objects.filter(id=thread.id))
    sql = [q["sql"] for q in queries.captured_queries if q["sql"].startswith("SELECT")]
    if connection.vendor == "sqlite":
        assert connection.settings_dict["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
        assert sql == []
    else:
        assert len(sql) == 1 and "FOR UPDATE" in sql[0]
