"""What an execution writes besides the run's status: the assistant message it streams, its steps,
and closing whatever a run leaves open when it ends.

A message's rows are created when its first token arrives, but its events go out before the rows
are written (`Outputs.open_message`): the first token does not wait for two inserts. Its text is
checkpointed every RUN_CHECKPOINT_SECONDS, not per token. `close_open_outputs` is shared with the
services (cancelling a queued run) and lease recovery.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from assistants_app.asyncdb import db
from assistants_app.models import Message, Run, RunStep
from assistants_app.models.run import EXECUTING_STATUSES
from assistants_app.models.thread import checkpoint_content
from assistants_app.serializers import message_obj, step_obj

from .emitter import Emitter
from .rounds import Round

log = logging.getLogger(__name__)
# How long a stopping executor waits to save a run's streamed text before giving up on it.
SHUTDOWN_SAVE_SECONDS = 5.0


def text_content(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"value": text, "annotations": []}}] if text else []


class LeaseLost(Exception):
    """The run is no longer this worker's: it must publish and write nothing more."""


class Outputs:
    def __init__(self, run: Run, emitter: Emitter) -> None:
        self.run = run
        self.emitter = emitter
        self._last_checkpoint = 0.0
        self._persisting: asyncio.Future[None] | None = None
        self._pending_checkpoint: asyncio.Future[None] | None = None
        self._marking: asyncio.Future[bool] | None = None

    # --- before the first model output -----------------------------------------------------------
    def start_marking_streamed(self) -> None:
        """Start recording (fenced by the lease) that this run may publish model output.

        Started when the model is asked, so that it is done by the first token: the first token
        must not wait for it. Recovery retries a run only while `streamed` is false
        (recovery.reap_lost), so nothing the model said may reach a reader before it is true.
        """
        if not self.run.streamed and self._marking is None:
            self._marking = asyncio.ensure_future(db(self._mark_streamed)())

    def _mark_streamed(self) -> bool:
        return bool(
            Run.objects.filter(
                id=self.run.id, lease_owner=self.run.lease_owner, status__in=EXECUTING_STATUSES
            ).update(streamed=True)
        )

    async def marked_streamed(self) -> None:
        """Wait until the run is marked as streamed; raises LeaseLost if it is not ours any more."""
        if self.run.streamed:
            return
        self.start_marking_streamed()
        assert self._marking is not None
        if not await self._marking:
            raise LeaseLost
        self.run.streamed = True

    # --- the assistant message ------------------------------------------------------------------
    async def open_message(self, rnd: Round) -> None:
        await self.marked_streamed()
        now = timezone.now()
        msg = Message(
            thread_id=self.run.thread_id,
            role="assistant",
            content=[],
            status=Message.Status.IN_PROGRESS,
            assistant_id=self.run.assistant_ref,
            run=self.run,
            created_at=now,
        )
        if Run.thread.is_cached(self.run):
            msg.thread = self.run.thread  # saving it then costs no search-index query in an API thread
        step = RunStep(
            run=self.run,
            thread_id_ref=self.run.thread_id,
            assistant_ref=self.run.assistant_ref,
            type="message_creation",
            step_details={"type": "message_creation", "message_creation": {"message_id": msg.id}},
            created_at=now,
        )

        def create() -> None:
            msg.save(force_insert=True)
            step.save(force_insert=True)

        # The ids are made here, so the events can go out before the rows are written. Anything
        # that touches the rows awaits `persisted`.
        self._persisting = asyncio.ensure_future(db(create)())
        rnd.message, rnd.message_step = msg, step
        step_payload, msg_payload = step_obj(step), message_obj(msg)
        self.emitter.emit("thread.run.step.created", step_payload)
        self.emitter.emit("thread.run.step.in_progress", step_payload)
        self.emitter.emit("thread.message.created", msg_payload)
        self.emitter.emit("thread.message.in_progress", msg_payload)
        self._last_checkpoint = time.monotonic()

    async def persisted(self) -> None:
        if self._persisting is not None:
            await self._persisting

    def text_delta(self, rnd: Round, text: str) -> None:
        assert rnd.message is not None
        self.emitter.emit(
            "thread.message.delta",
            {
                "id": rnd.message.id,
                "object": "thread.message.delta",
                "delta": {
                    "content": [{"index": 0, "type": "text", "text": {"value": text, "annotations": []}}]
                },
            },
        )

    def maybe_checkpoint(self, rnd: Round) -> None:
        """Save the streamed text at most every RUN_CHECKPOINT_SECONDS, and at the latest that long
        after the last delta: text that arrived just before the upstream stalled is saved too. One
        task waits for the next checkpoint and writes it in the background; per delta this only
        looks at that task."""
        pending = self._pending_checkpoint
        if pending is not None and not pending.done():
            return
        wait = self._last_checkpoint + settings.RUN_CHECKPOINT_SECONDS - time.monotonic()
        self._pending_checkpoint = asyncio.ensure_future(self._checkpoint_later(rnd, max(0.0, wait)))

    async def _checkpoint_later(self, rnd: Round, wait: float) -> None:
        await asyncio.sleep(wait)
        if not rnd.message_open():
            return
        try:
            await self._checkpoint(rnd)
        except Exception:
            # A missed checkpoint loses nothing yet: the next one, or the message's end, writes it.
            log.warning("run %s: checkpointing the streamed text failed", self.run.id, exc_info=True)

    async def save_open_text(self, rnd: Round | None) -> None:
        """Checkpoint the open message's text now, if there is one (on shutdown, bounded)."""
        if rnd is None or not rnd.message_open():
            return
        try:
            async with asyncio.timeout(SHUTDOWN_SAVE_SECONDS):
                await self._checkpoint(rnd)
        except (Exception, asyncio.CancelledError):  # e.g. the message's insert was cancelled too
            log.warning("run %s: saving the streamed text on shutdown failed", self.run.id, exc_info=True)

    async def _checkpoint(self, rnd: Round) -> None:
        self._last_checkpoint = time.monotonic()
        assert rnd.message is not None
        await self.persisted()
        content, msg_id = text_content(rnd.text), rnd.message.id
        await db(checkpoint_content)(msg_id, content)

    async def close_message(
        self, rnd: Round, content: list[dict[str, Any]], *, reason: str | None = None
    ) -> None:
        """End the round's message with its final `content`: completed, or incomplete for `reason`."""
        if not rnd.message_open():
            return
        msg, step = rnd.message, rnd.message_step
        assert msg is not None and step is not None
        await self.persisted()
        now = timezone.now()
        msg.content = content
        msg.token_count = rnd.text_tokens() + 4
        if reason is None:
            msg.status, msg.completed_at = Message.Status.COMPLETED, now
            end_step(step, "completed", now)
        else:
            msg.status, msg.incomplete_at = Message.Status.INCOMPLETE, now
            msg.incomplete_details = {"reason": reason}
            end_step(step, step_status_for(reason), now)
        step.usage = rnd.step_usage()

        def save() -> None:
            fields = [
                "content",
                "token_count",
                "status",
                "completed_at",
                "incomplete_at",
                "incomplete_details",
            ]
            msg.save(update_fields=fields)
            step.save(update_fields=["status", "usage", *_STEP_STAMP.values()])

        await db(save)()
        completed = msg.status == Message.Status.COMPLETED
        self.emitter.emit(
            "thread.message.completed" if completed else "thread.message.incomplete", message_obj(msg)
        )
        self.emitter.emit(f"thread.run.step.{step.status}", step_obj(step))

    # --- tool steps -----------------------------------------------------------------------------
    async def open_tool_step(self, rnd: Round) -> None:
        await self.marked_streamed()

        def create() -> RunStep:
            return RunStep.objects.create(
                run=self.run,
                thread_id_ref=self.run.thread_id,
                assistant_ref=self.run.assistant_ref,
                type="tool_calls",
                step_details={"type": "tool_calls", "tool_calls": []},
            )

        rnd.tool_step = await db(create)()
        step = step_obj(rnd.tool_step)
        self.emitter.emit("thread.run.step.created", step)
        self.emitter.emit("thread.run.step.in_progress", step)

    def step_delta(self, rnd: Round, index: int, call_payload: dict[str, Any]) -> None:
        assert rnd.tool_step is not None
        self.emitter.emit(
            "thread.run.step.delta",
            {
                "id": rnd.tool_step.id,
                "object": "thread.run.step.delta",
                "delta": {
                    "step_details": {"type": "tool_calls", "tool_calls": [{"index": index, **call_payload}]}
                },
            },
        )

    async def save_tool_step(self, rnd: Round, calls: list[dict[str, Any]], *, completed: bool) -> None:
        step = rnd.tool_step
        assert step is not None
        step.step_details = {"type": "tool_calls", "tool_calls": calls}
        step.usage = rnd.step_usage()
        if completed:
            step.status, step.completed_at = RunStep.Status.COMPLETED, timezone.now()
        await db(step.save)()
        if completed:
            self.emitter.emit("thread.run.step.completed", step_obj(step))

    # --- endings --------------------------------------------------------------------------------
    async def close_open(self, rnd: Round | None, reason: str, error: dict[str, Any] | None = None) -> None:
        """Mark this run's unfinished messages and steps, keeping the partial text. Call only while
        the run is still this worker's."""
        if rnd is not None and rnd.message_open():
            assert rnd.message is not None
            content, msg_id = text_content(rnd.text), rnd.message.id
            tokens = rnd.text_tokens() + 4
            await db(lambda: Message.objects.filter(id=msg_id).update(content=content, token_count=tokens))()
        # What the round generated before it was cut off is counted on its steps too.
        usage = rnd.step_usage() if rnd is not None else None
        steps = [s.id for s in (rnd.message_step, rnd.tool_step) if s is not None] if rnd and usage else []
        closing = await db(close_open_outputs)(self.run.id, reason, error, dict.fromkeys(steps, usage))
        for event, payload in closing:
            self.emitter.emit(event, payload)

    def cancel_pending(self) -> None:
        if self._pending_checkpoint is not None:
            self._pending_checkpoint.cancel()
        if self._marking is not None and not self._marking.done():
            self._marking.cancel()


# How a message ended (incomplete_details.reason) decides how its step ended.
_STEP_STATUS = {"run_cancelled": "cancelled", "run_expired": "expired", "run_failed": "failed"}
_STEP_STAMP = {
    "cancelled": "cancelled_at",
    "expired": "expired_at",
    "failed": "failed_at",
    "completed": "completed_at",
}


def step_status_for(reason: str) -> str:
    return _STEP_STATUS.get(reason, "completed")


def end_step(step: RunStep, status: str, now: Any) -> None:
    step.status = status
    setattr(step, _STEP_STAMP[status], now)


def close_open_outputs(
    run_id: str,
    reason: str,
    error: dict[str, Any] | None = None,
    usage: dict[str, dict[str, int] | None] | None = None,
) -> list[tuple[str, dict[str, Any]]]:
    """Close a run's in-progress messages and steps (with `usage` by step id where known); returns
    the events to publish."""
    now = timezone.now()
    events: list[tuple[str, dict[str, Any]]] = []
    for msg in Message.objects.filter(run_id=run_id, status=Message.Status.IN_PROGRESS):
        msg.status, msg.incomplete_at, msg.incomplete_details = (
            Message.Status.INCOMPLETE,
            now,
            {"reason": reason},
        )
        msg.save(update_fields=["status", "incomplete_at", "incomplete_details"])
        events.append(("thread.message.incomplete", message_obj(msg)))
    step_status = step_status_for(reason)
    for step in RunStep.objects.filter(run_id=run_id, status=RunStep.Status.IN_PROGRESS):
        end_step(step, step_status, now)
        if step_status == "failed" and error:
            step.last_error = error
        if usage and usage.get(step.id):
            step.usage = usage[step.id]
        step.save()
        events.append((f"thread.run.step.{step_status}", step_obj(step)))
    return events
