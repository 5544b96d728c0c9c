"""Following one run's events: the one reader used by the SSE API and the chat page's websocket."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection

from assistants_app.asyncdb import db
from assistants_app.models import Run
from assistants_app.models.run import TERMINAL_STATUSES, RunStatus
from assistants_app.serializers import run_obj

from .events import STREAM_END_EVENTS, RunEvent, get_event_log


def _until(batch: list[RunEvent], stop_on: Collection[str]) -> tuple[list[RunEvent], bool]:
    """`batch` up to and including its first event in `stop_on`, and whether there was one."""
    for i, ev in enumerate(batch):
        if ev.event in stop_on:
            return batch[: i + 1], True
    return batch, False


async def follow_batches(
    run_id: str,
    after: str = "",
    *,
    stop_on: Collection[str] = STREAM_END_EVENTS,
    check_every: float = 2.0,
    idle_ticks: bool = False,
) -> AsyncIterator[list[RunEvent]]:
    """The run's events after cursor `after`, up to and including the first in `stop_on`, in
    batches: whatever the log had ready at once. With `idle_ticks`, an empty batch every
    `check_every` seconds without an event (for keep-alives).

    The event log is the source; the database is the fallback when the log has nothing more to say
    (retention elapsed, a publisher crashed): a run that the database shows as finished ends the
    stream with its terminal event built from the row.
    """
    log = get_event_log()
    cursor = after
    while True:
        async for batch in log.read_batches(run_id, cursor, idle_timeout=check_every):
            batch, stop = _until(batch, stop_on)
            cursor = batch[-1].cursor
            yield batch
            if stop:
                return
        run = await db(Run.objects.filter(id=run_id).first, pool="readers")()
        if run is None:
            return
        ended = run.status in TERMINAL_STATUSES or (
            run.status == RunStatus.REQUIRES_ACTION and "thread.run.requires_action" in stop_on
        )
        if not ended:
            if idle_ticks:
                yield []
            continue
        # Drain anything published between the idle timeout and the database read.
        async for batch in log.read_batches(run_id, cursor, idle_timeout=0.1):
            batch, stop = _until(batch, stop_on)
            cursor = batch[-1].cursor
            yield batch
            if stop:
                return
        yield [RunEvent(cursor, f"thread.run.{run.status}", run_obj(run))]
        return


async def follow(
    run_id: str,
    after: str = "",
    *,
    stop_on: Collection[str] = STREAM_END_EVENTS,
    check_every: float = 2.0,
) -> AsyncIterator[RunEvent]:
    """`follow_batches`, one event at a time."""
    async for batch in follow_batches(run_id, after, stop_on=stop_on, check_every=check_every):
        for ev in batch:
            yield ev
