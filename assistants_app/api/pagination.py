"""Cursor pagination over time-ordered ids (ids sort by creation, see ids.py).

`after` continues in the list's order; `before` returns the page just before a cursor, still in the
list's order. `has_more` is computed with one extra row, never a COUNT.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db.models import Model, QuerySet


def page(
    qs: QuerySet[Any],
    query: dict[str, Any],
    render: Callable[[Any], dict[str, Any]],
    *,
    default_limit: int = 20,
    key: str = "id",
) -> dict[str, Any]:
    """`key` is the column the API id lives in (vector store files list by their file's id)."""
    limit = int(query.get("limit") or default_limit)
    order = query.get("order") or "desc"
    after, before = query.get("after"), query.get("before")
    ascending = order == "asc"
    if after:
        qs = qs.filter(**{f"{key}__gt" if ascending else f"{key}__lt": after})
    if before:
        qs = qs.filter(**{f"{key}__lt" if ascending else f"{key}__gt": before})
    # Paging backwards from `before` (without `after`): read towards the cursor's far side, then flip.
    backwards = bool(before) and not after
    read_ascending = ascending != backwards
    rows: list[Model] = list(qs.order_by(key if read_ascending else f"-{key}")[: limit + 1])
    has_more = len(rows) > limit
    rows = rows[:limit]
    if backwards:
        rows.reverse()
    data = [render(r) for r in rows]
    return {
        "object": "list",
        "data": data,
        "first_id": data[0]["id"] if data else None,
        "last_id": data[-1]["id"] if data else None,
        "has_more": has_more,
    }
