"""Ending runs that nobody will finish: expired runs and runs whose worker's lease ran out.

Every executor calls `recover()` at start-up and then every third of a lease period (on its
heartbeat), so a run whose worker was killed (SIGKILL, power loss) is resolved within 4/3 of a
lease period by whichever executor is alive, and an expired run within a third of one.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from assistants_app.models import Run
from assistants_app.models.run import EXECUTING_STATUSES, RunStatus

from . import state
from .outputs import close_open_outputs

log = logging.getLogger(__name__)

WORKER_LOST = (
    "The worker executing this run stopped before it finished (its lease expired); "
    "any partial output was kept."
)


def _candidates(now: datetime) -> tuple[list[Run], list[Run]]:
    """(overdue, lost) in one SELECT: every executor asks this every third of a lease, idle or not.

    Overdue: past expires_at while waiting (queued, requires_action) or while its worker is lost.
    Lost: executing, lease run out, not yet due to expire."""
    rows = Run.objects.filter(
        Q(expires_at__lt=now, status__in=[RunStatus.QUEUED, RunStatus.REQUIRES_ACTION])
        | Q(status__in=EXECUTING_STATUSES, lease_expires_at__lt=now)
    ).only("id", "status", "streamed", "attempts", "expires_at")
    overdue: list[Run] = []
    lost: list[Run] = []
    for run in rows:
        (overdue if run.expires_at is not None and run.expires_at < now else lost).append(run)
    return overdue, lost


def expire_overdue(runs: list[Run] | None = None) -> int:
    count = 0
    for run in _candidates(timezone.now())[0] if runs is None else runs:
        outputs = close_open_outputs(run.id, "run_expired")
        if state.end_with_outputs(run.id, RunStatus.EXPIRED, outputs, expected=[run.status]) is not None:
            count += 1
    return count


def reap_lost(runs: list[Run] | None = None) -> int:
    count = 0
    for run in _candidates(timezone.now())[1] if runs is None else runs:
        if run.status == RunStatus.CANCELLING:
            outputs = close_open_outputs(run.id, "run_cancelled")
            done = state.end_with_outputs(
                run.id, RunStatus.CANCELLED, outputs, expected=[RunStatus.CANCELLING]
            )
        elif not run.streamed and run.attempts < settings.RUN_MAX_ATTEMPTS:
            # Nothing reached any reader yet: running it again is invisible to clients.
            done = state.transition(run.id, RunStatus.QUEUED, expected=[RunStatus.IN_PROGRESS])
        else:
            error = {"code": "server_error", "message": WORKER_LOST}
            outputs = close_open_outputs(run.id, "run_failed", error)
            done = state.end_with_outputs(
                run.id,
                RunStatus.FAILED,
                outputs,
                expected=[RunStatus.IN_PROGRESS],
                fields={"last_error": error},
            )
        if done is not None:
            log.warning("recovered run %s (was %s) -> %s", run.id, run.status, done.status)
            count += 1
    return count


def recover() -> int:
    overdue, lost = _candidates(timezone.now())
    return expire_overdue(overdue) + reap_lost(lost)
