"""Streamed text checkpoints, saved together for every run on an event loop.

While a message streams, its text is saved every RUN_CHECKPOINT_SECONDS, so that a crash or a
restart loses at most that much of it (recovery closes the message with what was saved). Saved run
by run, each checkpoint was a trip to a database thread, an UPDATE and a commit: 500 streams made 500
commits a second, each one taking SQLite's write lock and a thread of the "runs" pool. Here the
messages due on one event loop are written in one trip, SAVE_BATCH to a transaction.

A message asks for a checkpoint (`request`) after a delta; the flush comes at most
RUN_CHECKPOINT_SECONDS after the request that started it and the flushes are that far apart, so a
message is saved at most that often and at the latest that long after its last delta. The text is
read at the flush, on the loop: what is written is the newest text, not the text of the request.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings
from django.db import transaction

from assistants_app.asyncdb import db
from assistants_app.models import Message

log = logging.getLogger(__name__)

# Messages per transaction: bounds how long one flush holds SQLite's write lock at a time.
SAVE_BATCH = 100

# The content to save, or None when there is nothing to save any more (the message ended).
Content = Callable[[], list[dict[str, Any]] | None]


def save_contents(rows: list[tuple[str, list[dict[str, Any]]]]) -> None:
    """Write each message's content while it is still in progress: a message that ended meanwhile
    keeps the content its end wrote."""
    for start in range(0, len(rows), SAVE_BATCH):
        with transaction.atomic():
            for message_id, content in rows[start : start + SAVE_BATCH]:
                Message.objects.filter(id=message_id, status=Message.Status.IN_PROGRESS).update(
                    content=content
                )


class Checkpoints:
    """The checkpoints waiting on one event loop (`for_loop`), and the task that writes them."""

    def __init__(self) -> None:
        self._due: dict[str, tuple[Awaitable[Any] | None, Content]] = {}
        self._task: asyncio.Task[None] | None = None
        self._writing: asyncio.Future[None] | None = None
        self._writing_ids: frozenset[str] = frozenset()

    def request(self, message_id: str, content: Content, persisted: Awaitable[Any] | None = None) -> None:
        """Save message `message_id` at the next flush, once `persisted` (its insert) is done:
        `content()` is called then, on the loop."""
        self._due[message_id] = (persisted, content)
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    def discard(self, message_id: str) -> None:
        self._due.pop(message_id, None)

    async def settled(self, message_id: str) -> None:
        """Drop the message's waiting checkpoint and wait for one being written: a message's final
        write must not be overwritten by an older checkpoint committing after it."""
        self._due.pop(message_id, None)
        writing = self._writing
        if writing is not None and message_id in self._writing_ids:
            # Shielded: a closer that is cancelled must not cancel the other messages' write.
            await asyncio.shield(writing)

    async def _run(self) -> None:
        try:
            while self._due:
                await asyncio.sleep(settings.RUN_CHECKPOINT_SECONDS)
                await self._flush()
        finally:
            self._task = None

    async def _flush(self) -> None:
        due, self._due = self._due, {}
        rows: list[tuple[str, list[dict[str, Any]]]] = []
        for message_id, (persisted, content) in due.items():
            if persisted is not None:
                try:
                    await persisted
                except asyncio.CancelledError:
                    task = asyncio.current_task()
                    if task is not None and task.cancelling():
                        raise
                    continue  # the insert was cancelled with its run
                except Exception:  # the insert failed: the run's own error handling reports it
                    continue
            text = content()
            if text is not None:
                rows.append((message_id, text))
        if not rows:
            return
        self._writing_ids = frozenset(message_id for message_id, _ in rows)
        self._writing = writing = asyncio.ensure_future(db(save_contents)(rows))
        try:
            await asyncio.shield(writing)
        except Exception:
            # A missed checkpoint loses nothing yet: the next one, or the message's end, writes it.
            log.warning("checkpointing %d streamed messages failed", len(rows), exc_info=True)
        finally:
            self._writing, self._writing_ids = None, frozenset()


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Checkpoints] = weakref.WeakKeyDictionary()


def for_loop() -> Checkpoints:
    """The running loop's checkpoints (one per loop: a test's loop, the server's, a worker's)."""
    loop = asyncio.get_running_loop()
    checkpoints = _BY_LOOP.get(loop)
    if checkpoints is None:
        checkpoints = _BY_LOOP[loop] = Checkpoints()
    return checkpoints
