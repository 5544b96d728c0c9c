"""The run status machine: the only writer of `Run.status`.

Every change is a conditional UPDATE (`WHERE id = ? AND status IN (...)`) whose row count says
whether this caller won; a caller that lost learns it and backs off. The matching `thread.run.*`
event is published after commit, so the event stream and the database never disagree about the
order of statuses.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, QuerySet, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from assistants_app.models import Run
from assistants_app.models.run import ACTIVE_STATUSES, EXECUTING_STATUSES, TERMINAL_STATUSES
from assistants_app.models.run import RunStatus as S
from assistants_app.serializers import run_obj

from .events import get_event_log

ALLOWED: dict[str, frozenset[str]] = {
    S.QUEUED: frozenset({S.IN_PROGRESS, S.CANCELLED, S.FAILED, S.EXPIRED}),
    # in_progress -> queued is recovery: a worker died before the run produced any output.
    S.IN_PROGRESS: frozenset(
        {S.REQUIRES_ACTION, S.CANCELLING, S.COMPLETED, S.FAILED, S.INCOMPLETE, S.EXPIRED, S.QUEUED}
    ),
    S.REQUIRES_ACTION: frozenset({S.QUEUED, S.CANCELLED, S.FAILED, S.EXPIRED}),
    S.CANCELLING: frozenset({S.CANCELLED, S.FAILED, S.EXPIRED}),
    **{s: frozenset() for s in TERMINAL_STATUSES},
}
assert set(ALLOWED) == set(ACTIVE_STATUSES) | set(TERMINAL_STATUSES) == set(S)

_TIMESTAMP_FIELD: dict[str, str] = {
    S.CANCELLED: "cancelled_at",
    S.FAILED: "failed_at",
    S.COMPLETED: "completed_at",
}


class IllegalTransition(ValueError):
    pass


def is_allowed(source: str, target: str) -> bool:
    return target in ALLOWED.get(source, frozenset())


def sources_for(target: str) -> list[str]:
    return [s for s, targets in ALLOWED.items() if target in targets]


def publish_run_event(run: Run, event: str | None = None) -> None:
    payload = run_obj(run)
    name = event or f"thread.run.{run.status}"
    transaction.on_commit(lambda: get_event_log().publish(run.id, name, payload))


def create_run(**fields: Any) -> Run:
    """Insert a queued run and announce it (`thread.run.created`, `thread.run.queued`)."""
    fields.setdefault("expires_at", timezone.now() + timedelta(seconds=settings.RUN_EXPIRES_SECONDS))
    run = Run.objects.create(status=S.QUEUED, **fields)
    publish_run_event(run, "thread.run.created")
    publish_run_event(run, "thread.run.queued")
    return run


def transition(
    run_id: str,
    target: str,
    *,
    expected: Iterable[str] | None = None,
    fields: dict[str, Any] | None = None,
    publish: bool = True,
    owner: str | None = None,
    related: tuple[str, ...] = (),
) -> Run | None:
    """Move a run to `target` if it is currently in one of `expected`.

    Returns the updated run, or None when the row was not in an expected status (someone else won,
    or the run moved on). Raises IllegalTransition for a transition the machine never allows.
    `owner` fences a worker: the update applies only while that worker still holds the run's lease,
    so a worker that stalled past its lease cannot overwrite what the run's new owner did.
    `related`: relations loaded with the returned run (select_related).
    """
    sources = list(expected) if expected is not None else sources_for(target)
    bad = [s for s in sources if not is_allowed(s, target)]
    if bad or not sources:
        raise IllegalTransition(f"run status cannot go from {bad or sources} to {target!r}")
    now = timezone.now()
    values: dict[str, Any] = dict(fields or {})
    values["status"] = target
    if target in _TIMESTAMP_FIELD:
        values.setdefault(_TIMESTAMP_FIELD[target], now)
    if target not in EXECUTING_STATUSES:
        # Nobody executes a run that waits, is queued or is finished: drop the lease.
        values.setdefault("lease_owner", "")
        values.setdefault("lease_expires_at", None)
    if target != S.REQUIRES_ACTION:
        values.setdefault("required_action", None)
    with transaction.atomic():
        rows = Run.objects.filter(id=run_id, status__in=sources)
        if owner is not None:
            rows = rows.filter(lease_owner=owner)
        updated = rows.update(**values)
        if updated != 1:
            return None
        run = Run.objects.select_related(*related).get(id=run_id) if related else Run.objects.get(id=run_id)
        if publish:
            publish_run_event(run)
    return run


def end_with_outputs(
    run_id: str,
    target: str,
    outputs: list[tuple[str, dict[str, Any]]],
    *,
    expected: Iterable[str],
    fields: dict[str, Any] | None = None,
) -> Run | None:
    """`transition` to an end for a run whose open messages and steps were just closed
    (outputs.close_open_outputs): their events go out before the run's own, in OpenAI's order, since
    readers stop at the run's terminal event and would otherwise never see its message end."""
    with transaction.atomic():
        run = transition(run_id, target, expected=expected, fields=fields, publish=False)
        if run is None:
            return None
        log = get_event_log()
        transaction.on_commit(lambda: [log.publish(run_id, e, d) for e, d in outputs])
        publish_run_event(run)
    return run


def claim(run_id: str, worker_id: str) -> Run | None:
    """queued -> in_progress for one worker; exactly one of several racing workers wins."""
    now = timezone.now()
    return transition(
        run_id,
        S.IN_PROGRESS,
        expected=[S.QUEUED],
        fields={
            "lease_owner": worker_id,
            "lease_expires_at": now + timedelta(seconds=settings.RUN_LEASE_SECONDS),
            "started_at": Coalesce(F("started_at"), Value(now)),
            "attempts": F("attempts") + 1,
        },
        # With the thread at hand, the run's messages know their thread's kind without a query; the
        # assistant is the execution's first read (engine._load).
        related=("thread", "assistant"),
    )


def _held(worker_id: str, ids: list[str]) -> QuerySet[Run]:
    return Run.objects.filter(id__in=ids, lease_owner=worker_id, status__in=EXECUTING_STATUSES)


def renew_leases(worker_id: str, run_ids: Iterable[str]) -> None:
    """Extend this worker's leases on those of `run_ids` it still holds."""
    ids = list(run_ids)
    if ids:
        _held(worker_id, ids).update(
            lease_expires_at=timezone.now() + timedelta(seconds=settings.RUN_LEASE_SECONDS)
        )


def held_leases(worker_id: str, run_ids: Iterable[str]) -> tuple[set[str], set[str]]:
    """Which of `run_ids` this worker still holds (others were taken or ended), and which of those
    are being cancelled: one SELECT."""
    ids = list(run_ids)
    rows = list(_held(worker_id, ids).values_list("id", "status")) if ids else []
    return {run_id for run_id, _ in rows}, {run_id for run_id, status in rows if status == S.CANCELLING}
