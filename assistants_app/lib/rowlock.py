"""Row locks that serialize writers: one rule for every database.

PostgreSQL locks the rows (SELECT ... FOR UPDATE) until the transaction ends. SQLite has no row
locks and needs none: every transaction here begins IMMEDIATE (settings), so the one that is open
already holds the database's write lock, and the SELECT would be a wasted query.
"""

from __future__ import annotations

from typing import Any

from django.db import connections
from django.db.models import QuerySet


def lock(rows: QuerySet[Any]) -> None:
    """Lock `rows` until the current transaction ends (call inside `transaction.atomic()`)."""
    if connections[rows.db].features.has_select_for_update:
        list(rows.select_for_update().values_list("pk", flat=True))
