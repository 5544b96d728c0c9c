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

import math
from collections.abc import Mapping

from django.db.models import Count, F, Window
from django.db.models.functions import RowNumber

from assistants_app.models import Run
from assistants_app.models.run import EXECUTING_STATUSES, RunStatus


def queued_in_turn(limit: int, last_served: Mapping[int, float] | None = None) -> list[tuple[str, int]]:
    """Up to `limit` (run id, owner id) pairs of queued runs, in the order to try claiming them."""
    if limit <= 0:
        return []
    served = last_served or {}
    # No owner can need more than `limit` places, so each owner's queue is cut there (in SQL).
    queued = list(
        Run.objects.filter(status=RunStatus.QUEUED)
        .annotate(
            owner=F("thread__owner_id"),
            place=Window(RowNumber(), partition_by=[F("thread__owner_id")], order_by=F("id").asc()),
        )
        .filter(place__lte=limit)
        .values_list("id", "owner", "place")
    )
    if not queued:
        return []
    executing = dict(
        Run.objects.filter(status__in=EXECUTING_STATUSES)
        .values("thread__owner_id")
        .annotate(n=Count("id"))
        .values_list("thread__owner_id", "n")
    )
    queued.sort(key=lambda row: (row[2] + executing.get(row[1], 0), served.get(row[1], -math.inf), row[0]))
    return [(run_id, owner) for run_id, owner, _ in queued[:limit]]
