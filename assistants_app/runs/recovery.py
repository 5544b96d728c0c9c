"""Ending runs that nobody will finish: expired runs and runs whose worker's lease ran out.

Every executor calls `recover()` at start-up and on each heartbeat, so a run whose worker was
killed (SIGKILL, power loss) is resolved within one lease period by whichever executor is alive.
"""

from __future__ import annotations

import logging

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


def expire_overdue() -> int:
    now = timezone.now()
    count = 0
    overdue = Run.objects.filter(expires_at__lt=now).filter(
        Q(status__in=[RunStatus.QUEUED, RunStatus.REQUIRES_ACTION])
        | Q(status__in=EXECUTING_STATUSES, lease_expires_at__lt=now)
    )
    for run in overdue.only("id", "status"):
        outputs = close_open_outputs(run.id, "run_expired")
        if state.end_with_outputs(run.id, RunStatus.EXPIRED, outputs, expected=[run.status]) is not None:
            count += 1
    return count


def reap_lost() -> int:
    now = timezone.now()
    count = 0
    lost = Run.objects.filter(status__in=EXECUTING_STATUSES, lease_expires_at__lt=now)
    for run in lost.only("id", "status", "streamed", "attempts"):
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
    return expire_overdue() + reap_lost()
