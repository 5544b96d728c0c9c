"""Which queued runs an executor should try to claim next: fair across owners, not first come.

With one first-come list, one owner who queues hundreds of runs makes everyone else wait behind
all of them. Instead each owner's queued runs take turns: an owner's n-th oldest queued run comes
at turn n, pushed back by the runs that owner already has executing. Candidates go by turn; within
a turn, the owner this executor served least recently goes first (then the oldest run). So a new
owner's run is claimed before the next run of an owner who is already being served, however long
that owner's backlog is.

The claim itself stays state.claim's conditional UPDATE: this only orders the attempts.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping

from django.db import connection

from assistants_app.models import Run, Thread
from assistants_app.models.run import EXECUTING_STATUSES, RunStatus

# Every executor runs this on each wake-up and poll, so it is one statement written out, not two
# ORM queries compiled anew each time (that compiling was most of a claim's CPU). Window functions
# and CTEs: SQLite >= 3.25 and PostgreSQL alike.
_IN_TURN = """
WITH queued AS (
    SELECT r.id AS id, t.owner_id AS owner,
           ROW_NUMBER() OVER (PARTITION BY t.owner_id ORDER BY r.id) AS place
    FROM {run} r INNER JOIN {thread} t ON r.thread_id = t.id
    WHERE r.status = %s
), executing AS (
    SELECT t.owner_id AS owner, COUNT(*) AS n
    FROM {run} r INNER JOIN {thread} t ON r.thread_id = t.id
    WHERE r.status IN ({executing})
    GROUP BY t.owner_id
)
SELECT q.id, q.owner, q.place + COALESCE(e.n, 0)
FROM queued q LEFT JOIN executing e ON e.owner = q.owner
WHERE q.place <= %s
"""


@functools.cache
def _in_turn_sql() -> str:
    return _IN_TURN.format(
        run=connection.ops.quote_name(Run._meta.db_table),
        thread=connection.ops.quote_name(Thread._meta.db_table),
        executing=", ".join(["%s"] * len(EXECUTING_STATUSES)),
    )


def queued_in_turn(limit: int, last_served: Mapping[int, float] | None = None) -> list[tuple[str, int]]:
    """Up to `limit` (run id, owner id) pairs of queued runs, in the order to try claiming them."""
    if limit <= 0:
        return []
    served = last_served or {}
    # No owner can need more than `limit` places, so each owner's queue is cut there (in SQL).
    with connection.cursor() as cursor:
        cursor.execute(_in_turn_sql(), [str(RunStatus.QUEUED), *map(str, EXECUTING_STATUSES), limit])
        rows: list[tuple[str, int, int]] = cursor.fetchall()
    rows.sort(key=lambda row: (row[2], served.get(row[1], -math.inf), row[0]))
    return [(run_id, owner) for run_id, owner, _ in rows[:limit]]
