"""Executing one run: prompt → backend stream → tools loop → persisted messages, steps and events.

The engine runs on a worker (never inside a request or a consumer). It writes `Run.status` only
through `state`, publishes every other event through an `Emitter`, and checkpoints the assistant
message's text every RUN_CHECKPOINT_SECONDS rather than per token.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.utils import timezone

from assistants_app.asyncdb import db
from assistants_app.backends import BackendError, get_backend
from assistants_app.backends.base import ChatRequest, Finish, TextDelta, ToolCallDelta, Usage
from assistants_app.ids import new_call_id
from assistants_app.models import Assistant, Message, Run, RunStep
from assistants_app.models.run import RunStatus
from assistants_app.objects import message_obj, step_obj
from assistants_app.tools import hosted

from . import state
from .context import PromptTooLarge, build_prompt, count_tokens
from .emitter import Emitter
from .events import get_event_log

log = logging.getLogger(__name__)


class RunCancelled(Exception):
    pass


class RunExpired(Exception):
    pass


class _LimitReached(Exception):
    pass


@dataclass
class _Call:
    index: int
    id: str
    name: str = ""
    arguments: str = ""


@dataclass
class _Round:
    text: str = ""
    calls: dict[int, _Call] = field(default_factory=dict)
    finish: str | None = None
    usage: Usage | None = None
    message: Message | None = None
    message_step: RunStep | None = None
    tool_step: RunStep | None = None
    completion_tokens: int = 0  # local count, for limits and when the upstream reports no usage


class Execution:
    def __init__(self, run: Run, *, cancel: asyncio.Event | None = None) -> None:
        self.run = run
        self.owner = run.lease_owner
        # Set by the executor when the lease was lost: stop without writing anything more.
        self.lost = False
        self.cancel = cancel or asyncio.Event()
        self.emitter = Emitter(get_event_log(), run.id)
        self.usage = dict(run.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
        self.assistant: Assistant | None = None
        self._last_checkpoint = 0.0
        self._round: _Round | None = None
        self._persisting: asyncio.Future[None] | None = None
        self._pending_checkpoint: asyncio.Future[None] | None = None
        # Outputs of hosted tools that belong in the next assistant message.
        self.tool_files: list[dict[str, Any]] = []
        self.citations: list[dict[str, Any]] = []

    # ---------------------------------------------------------------------------------------------
    async def execute(self) -> None:
        try:
            await self._execute()
        except RunCancelled:
            if self.lost or not await db(self._still_owned)():
                log.warning("run %s: lease lost, leaving it to its new owner", self.run.id)
                return
            await self._finish_cancelled()
        except RunExpired:
            await self._finish_expired()
        except BackendError as exc:
            await self._finish_failed(exc.code, exc.message)
        except PromptTooLarge as exc:
            if exc.reason:
                await self._finish_incomplete(exc.reason)
            else:
                await self._finish_failed("invalid_prompt", str(exc))
        except Exception:
            log.exception("run %s crashed", self.run.id)
            await self._finish_failed("server_error", "The server had an error while processing the run.")
        finally:
            if self._pending_checkpoint is not None:
                self._pending_checkpoint.cancel()
            await self.emitter.close()

    async def _execute(self) -> None:
        self.assistant, answered = await db(self._load)()
        if answered is not None:
            self.emitter.emit("thread.run.step.completed", step_obj(answered))
        for _ in range(settings.RUN_MAX_TOOL_ROUNDS):
            self._check_deadlines()
            tools, hosted_by_name = self._tool_specs()
            # One trip to the database thread per round: each hop adds to time-to-first-token.
            prompt = await db(lambda tools=tools: build_prompt(self.run, self._tool_tail(), tools))()
            backend = get_backend(self.assistant)
            max_tokens = self._remaining_completion_tokens()
            if max_tokens is not None and max_tokens <= 0:
                await self._finish_incomplete("max_completion_tokens")
                return
            request = ChatRequest(
                model=self.run.model,
                messages=prompt.messages,
                tools=tools,
                tool_choice=self._tool_choice() if tools else None,
                parallel_tool_calls=self.run.parallel_tool_calls if tools else None,
                temperature=self.run.temperature,
                top_p=self.run.top_p,
                max_tokens=max_tokens,
                response_format=self._response_format(),
            )
            rnd = self._round = _Round()
            try:
                await self._race(self._stream(backend, request, rnd, hosted_by_name))
            except _LimitReached:
                rnd.finish = "length"
            self._add_usage(rnd, prompt.prompt_tokens)
            if rnd.finish == "length":
                await self._close_message(rnd, status="incomplete", reason="max_tokens")
                await self._finish_incomplete("max_completion_tokens")
                return
            await self._close_message(rnd)
            if not rnd.calls:
                await self._finish_completed()
                return
            functions = await self._run_calls(rnd, hosted_by_name)
            if functions:
                await self._require_action(functions)
                return
        await self._finish_failed(
            "server_error", f"The run made more than {settings.RUN_MAX_TOOL_ROUNDS} tool rounds."
        )

    # ---------------------------------------------------------------------------------------------
    async def _race(self, coro: Any) -> None:
        """Run `coro` until done, the run is cancelled, or it expires; cancelling it closes the stream."""
        task = asyncio.ensure_future(coro)
        waiter = asyncio.ensure_future(self.cancel.wait())
        timeout = (
            max(0.0, (self.run.expires_at - timezone.now()).total_seconds()) if self.run.expires_at else None
        )
        try:
            done, _ = await asyncio.wait({task, waiter}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if task in done:
            task.result()
            return
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass
        if self.cancel.is_set():
            raise RunCancelled
        raise RunExpired

    def _check_deadlines(self) -> None:
        if self.cancel.is_set():
            raise RunCancelled
        if self.run.expires_at and timezone.now() >= self.run.expires_at:
            raise RunExpired

    async def _stream(
        self, backend: Any, request: ChatRequest, rnd: _Round, hosted_by_name: dict[str, Any]
    ) -> None:
        limit = request.max_tokens
        stream = backend.stream(request)
        try:
            async for ev in stream:
                if isinstance(ev, TextDelta):
                    if not ev.text:
                        continue
                    if rnd.message is None:
                        await self._open_message(rnd)
                    rnd.text += ev.text
                    rnd.completion_tokens += count_tokens(ev.text)
                    self._emit_text_delta(rnd, ev.text)
                    await self._maybe_checkpoint(rnd)
                    if limit is not None and rnd.completion_tokens >= limit:
                        raise _LimitReached
                elif isinstance(ev, ToolCallDelta):
                    await self._on_tool_delta(rnd, ev, hosted_by_name)
                elif isinstance(ev, Usage):
                    rnd.usage = ev
                elif isinstance(ev, Finish):
                    rnd.finish = ev.reason
        finally:
            await stream.aclose()

    # --- messages --------------------------------------------------------------------------------
    async def _open_message(self, rnd: _Round) -> None:
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
            if not self.run.streamed:
                Run.objects.filter(id=self.run.id).update(streamed=True)
                self.run.streamed = True

        # The ids are made here, so the events can go out before the rows are written: the first
        # token does not wait for two inserts. Anything that touches the rows awaits `_persisted`.
        self._persisting = asyncio.ensure_future(db(create)())
        rnd.message, rnd.message_step = msg, step
        self._emit_open(rnd)

    async def _persisted(self) -> None:
        if self._persisting is not None:
            await self._persisting

    def _emit_open(self, rnd: _Round) -> None:
        assert rnd.message is not None and rnd.message_step is not None
        step = step_obj(rnd.message_step)
        self.emitter.emit("thread.run.step.created", step)
        self.emitter.emit("thread.run.step.in_progress", step)
        msg = message_obj(rnd.message)
        self.emitter.emit("thread.message.created", msg)
        self.emitter.emit("thread.message.in_progress", msg)
        self._last_checkpoint = time.monotonic()

    def _emit_text_delta(self, rnd: _Round, text: str) -> None:
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

    async def _maybe_checkpoint(self, rnd: _Round) -> None:
        """Save the streamed text at most every RUN_CHECKPOINT_SECONDS, and at the latest that long
        after the last delta: text that arrived just before the upstream stalled is saved too."""
        wait = self._last_checkpoint + settings.RUN_CHECKPOINT_SECONDS - time.monotonic()
        if wait <= 0:
            await self._checkpoint(rnd)
        elif self._pending_checkpoint is None or self._pending_checkpoint.done():
            self._pending_checkpoint = asyncio.ensure_future(self._checkpoint_later(rnd, wait))

    async def _checkpoint_later(self, rnd: _Round, wait: float) -> None:
        await asyncio.sleep(wait)
        if rnd.message is not None and rnd.message.status == Message.Status.IN_PROGRESS:
            await self._checkpoint(rnd)

    async def _checkpoint(self, rnd: _Round) -> None:
        self._last_checkpoint = time.monotonic()
        assert rnd.message is not None
        await self._persisted()
        content, msg_id = _text_content(rnd.text), rnd.message.id
        await db(
            lambda: Message.objects.filter(id=msg_id, status=Message.Status.IN_PROGRESS).update(
                content=content
            )
        )()

    async def _close_message(
        self, rnd: _Round, *, status: str = "completed", reason: str | None = None
    ) -> None:
        if rnd.message is None or rnd.message.status != Message.Status.IN_PROGRESS:
            return
        msg, step = rnd.message, rnd.message_step
        assert step is not None
        await self._persisted()
        now = timezone.now()
        msg.content = self._final_content(rnd.text)
        msg.token_count = count_tokens(rnd.text) + 4
        if status == "completed" and reason is None:
            msg.status, msg.completed_at = Message.Status.COMPLETED, now
            end_step(step, "completed", now)
        else:
            msg.status, msg.incomplete_at = Message.Status.INCOMPLETE, now
            msg.incomplete_details = {"reason": reason}
            end_step(step, step_status_for(reason or ""), now)
        step.usage = self._round_usage(rnd)

        def save() -> None:
            msg.save(
                update_fields=[
                    "content",
                    "token_count",
                    "status",
                    "completed_at",
                    "incomplete_at",
                    "incomplete_details",
                ]
            )
            step.save()

        await db(save)()
        m = message_obj(msg)
        self.emitter.emit(
            "thread.message.completed" if msg.status == "completed" else "thread.message.incomplete", m
        )
        self.emitter.emit(f"thread.run.step.{step.status}", step_obj(step))

    # --- tools -----------------------------------------------------------------------------------
    def _tool_specs(self) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        specs: list[dict[str, Any]] = []
        hosted_by_name: dict[str, Any] = {}
        for tool in self.run.tools or []:
            ttype = tool.get("type")
            if ttype == "function":
                fn = tool["function"]
                spec = {
                    "name": fn["name"],
                    "description": fn.get("description", ""),
                    "parameters": fn.get("parameters") or {"type": "object", "properties": {}},
                }
                if fn.get("strict") is not None:
                    spec["strict"] = fn["strict"]
                specs.append({"type": "function", "function": spec})
            else:
                impl = hosted.get(ttype)
                if impl is None:
                    continue
                spec = impl.function_spec(self.run, tool)
                hosted_by_name[spec["name"]] = impl
                specs.append({"type": "function", "function": spec})
        return specs, hosted_by_name

    def _tool_choice(self) -> Any:
        choice = self.run.tool_choice
        if choice is None or isinstance(choice, str):
            return choice
        if choice.get("type") == "function":
            return choice
        return {"type": "function", "function": {"name": choice.get("type")}}

    async def _on_tool_delta(self, rnd: _Round, ev: ToolCallDelta, hosted_by_name: dict[str, Any]) -> None:
        if rnd.message is not None and rnd.message.status == Message.Status.IN_PROGRESS:
            # Text before tool calls is its own message; close it so its step precedes the tool step.
            await self._close_message(rnd)
        if rnd.tool_step is None:
            rnd.tool_step = await db(self._create_tool_step)()
            step = step_obj(rnd.tool_step)
            self.emitter.emit("thread.run.step.created", step)
            self.emitter.emit("thread.run.step.in_progress", step)
        call = rnd.calls.get(ev.index)
        fresh = call is None
        if call is None:
            call = rnd.calls[ev.index] = _Call(index=ev.index, id=ev.id or new_call_id())
        if ev.name:
            call.name += ev.name
        if ev.arguments:
            call.arguments += ev.arguments
            rnd.completion_tokens += count_tokens(ev.arguments)
        impl = hosted_by_name.get(call.name)
        if impl is not None:
            if fresh or ev.name:
                self._emit_step_delta(rnd, call.index, impl.initial_call(call.id))
            elif ev.arguments:
                payload = impl.input_delta(call.arguments, ev.arguments)
                if payload is not None:
                    self._emit_step_delta(rnd, call.index, payload)
            return
        fn: dict[str, Any] = {"arguments": ev.arguments or ""}
        if fresh or ev.name:
            fn["name"] = call.name
            fn["output"] = None
        payload = {"type": "function", "function": fn}
        if fresh:
            payload["id"] = call.id
        self._emit_step_delta(rnd, call.index, payload)

    def _create_tool_step(self) -> RunStep:
        if not self.run.streamed:
            Run.objects.filter(id=self.run.id).update(streamed=True)
            self.run.streamed = True
        return RunStep.objects.create(
            run=self.run,
            thread_id_ref=self.run.thread_id,
            assistant_ref=self.run.assistant_ref,
            type="tool_calls",
            step_details={"type": "tool_calls", "tool_calls": []},
        )

    def _emit_step_delta(self, rnd: _Round, index: int, call_payload: dict[str, Any]) -> None:
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

    async def _run_calls(self, rnd: _Round, hosted_by_name: dict[str, Any]) -> list[dict[str, Any]]:
        """Execute hosted calls; return the function calls that the client must answer."""
        step = rnd.tool_step
        assert step is not None
        calls: list[dict[str, Any]] = []
        pending: list[dict[str, Any]] = []
        functions = {t["function"]["name"] for t in self.run.tools or [] if t.get("type") == "function"}
        for call in sorted(rnd.calls.values(), key=lambda c: c.index):
            impl = hosted_by_name.get(call.name)
            if impl is not None:
                ctx = hosted.ToolContext(
                    run=self.run,
                    step_id=step.id,
                    index=call.index,
                    call_id=call.id,
                    emit_delta=functools.partial(self._emit_step_delta, rnd, call.index),
                )
                outcome = await self._race_value(impl.execute(ctx, call.arguments))
                # `_arguments` / `_output` are what the model wrote and reads; API objects omit them.
                tc = {
                    **outcome.tool_call,
                    "id": call.id,
                    "_arguments": call.arguments,
                    "_output": outcome.output,
                }
                self.tool_files += outcome.files
                self.citations += outcome.citations
                calls.append(tc)
                continue
            output = None
            if call.name not in functions:
                output = f"Error: there is no tool named {call.name!r}."
            tc = {
                "id": call.id,
                "type": "function",
                "function": {"name": call.name, "arguments": call.arguments, "output": output},
            }
            calls.append(tc)
            if output is None:
                pending.append(
                    {
                        "id": call.id,
                        "type": "function",
                        "function": {"name": call.name, "arguments": call.arguments},
                    }
                )
        step.step_details = {"type": "tool_calls", "tool_calls": calls}
        step.usage = self._round_usage(rnd)
        if not pending:
            step.status, step.completed_at = RunStep.Status.COMPLETED, timezone.now()
        await db(step.save)()
        if not pending:
            self.emitter.emit("thread.run.step.completed", step_obj(step))
        return pending

    async def _race_value(self, coro: Any) -> Any:
        box: list[Any] = []

        async def run() -> None:
            box.append(await coro)

        await self._race(run())
        return box[0]

    def _load(self) -> tuple[Assistant | None, RunStep | None]:
        """The assistant, and (after submit_tool_outputs) the waiting step, now completed."""
        assistant = Assistant.objects.filter(id=self.run.assistant_ref).first()
        step = RunStep.objects.filter(
            run=self.run, type="tool_calls", status=RunStep.Status.IN_PROGRESS
        ).first()
        if step is None or any(_call_output(c) is None for c in step.step_details.get("tool_calls", [])):
            return assistant, None
        step.status, step.completed_at = RunStep.Status.COMPLETED, timezone.now()
        step.save()
        return assistant, step

    def _tool_tail(self) -> list[dict[str, Any]]:
        """This run's tool rounds in Chat Completions form, oldest first."""
        tail: list[dict[str, Any]] = []
        for step in RunStep.objects.filter(run=self.run, type="tool_calls").order_by("id"):
            calls = step.step_details.get("tool_calls", [])
            if not calls:
                continue
            tail.append(
                {
                    "role": "assistant",
                    "content": None,
                    "tool_calls": [
                        {
                            "id": c["id"],
                            "type": "function",
                            "function": {"name": _call_name(c), "arguments": _call_arguments(c)},
                        }
                        for c in calls
                    ],
                }
            )
            for c in calls:
                tail.append({"role": "tool", "tool_call_id": c["id"], "content": _call_output(c) or ""})
        return tail

    async def _require_action(self, functions: list[dict[str, Any]]) -> None:
        await self.emitter.flush()
        action = {"type": "submit_tool_outputs", "submit_tool_outputs": {"tool_calls": functions}}
        run = await db(state.transition)(
            self.run.id,
            RunStatus.REQUIRES_ACTION,
            expected=[RunStatus.IN_PROGRESS],
            fields={"required_action": action, "usage": self.usage},
            owner=self.owner,
        )
        if run is None:
            raise RunCancelled

    # --- endings ---------------------------------------------------------------------------------
    def _remaining_completion_tokens(self) -> int | None:
        if not self.run.max_completion_tokens:
            return None
        return int(self.run.max_completion_tokens - self.usage.get("completion_tokens", 0))

    def _response_format(self) -> dict[str, Any] | None:
        rf = self.run.response_format
        if not rf or rf == "auto" or (isinstance(rf, dict) and rf.get("type") == "text"):
            return None
        return rf  # type: ignore[no-any-return]

    def _round_usage(self, rnd: _Round) -> dict[str, int] | None:
        if rnd.usage is None and not rnd.completion_tokens:
            return None
        prompt = rnd.usage.prompt_tokens if rnd.usage else 0
        completion = rnd.usage.completion_tokens if rnd.usage else rnd.completion_tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _add_usage(self, rnd: _Round, estimated_prompt: int) -> None:
        prompt = rnd.usage.prompt_tokens if rnd.usage else estimated_prompt
        completion = rnd.usage.completion_tokens if rnd.usage else rnd.completion_tokens
        self.usage["prompt_tokens"] += prompt
        self.usage["completion_tokens"] += completion
        self.usage["total_tokens"] = self.usage["prompt_tokens"] + self.usage["completion_tokens"]

    async def _end(
        self, target: str, fields: dict[str, Any], expected: list[str] | None = None
    ) -> Run | None:
        await self.emitter.flush()
        fields = {"usage": self.usage, **fields}
        return await db(state.transition)(
            self.run.id, target, expected=expected or [RunStatus.IN_PROGRESS], fields=fields, owner=self.owner
        )

    async def _finish_completed(self) -> None:
        if await self._end(RunStatus.COMPLETED, {}) is None:
            await self._finish_cancelled()

    async def _finish_incomplete(self, reason: str) -> None:
        await self._close_open_messages("max_tokens")
        if await self._end(RunStatus.INCOMPLETE, {"incomplete_details": {"reason": reason}}) is None:
            await self._finish_cancelled()

    async def _finish_failed(self, code: str, message: str) -> None:
        # The technical detail is for the operator; chat users see plain words (services/chat_errors).
        log.warning("run %s failed: %s: %s", self.run.id, code, message)
        await self._close_open_messages("run_failed", error={"code": code, "message": message})
        await self._end(
            RunStatus.FAILED,
            {"last_error": {"code": code, "message": message}},
            expected=[RunStatus.IN_PROGRESS, RunStatus.CANCELLING],
        )

    async def _finish_cancelled(self) -> None:
        await self._close_open_messages("run_cancelled")
        await db(state.transition)(
            self.run.id, RunStatus.CANCELLING, expected=[RunStatus.IN_PROGRESS], owner=self.owner
        )
        await self._end(RunStatus.CANCELLED, {}, expected=[RunStatus.CANCELLING])

    async def _finish_expired(self) -> None:
        await self._close_open_messages("run_expired")
        await self._end(RunStatus.EXPIRED, {}, expected=[RunStatus.IN_PROGRESS, RunStatus.CANCELLING])

    def _final_content(self, text: str) -> list[dict[str, Any]]:
        """The text with its annotations, then images that tools made for this answer."""
        annotations: list[dict[str, Any]] = []
        for f in self.tool_files:
            if f["image"]:
                continue
            marker = f"sandbox:/mnt/data/{f['name']}"
            start = text.find(marker)
            if start >= 0:
                annotations.append(
                    {
                        "type": "file_path",
                        "text": marker,
                        "start_index": start,
                        "end_index": start + len(marker),
                        "file_path": {"file_id": f["file_id"]},
                    }
                )
        annotations += resolve_citations(text, self.citations)
        annotations.sort(key=lambda a: a["start_index"])
        content = [{"type": "text", "text": {"value": text, "annotations": annotations}}] if text else []
        content += [
            {"type": "image_file", "image_file": {"file_id": f["file_id"]}}
            for f in self.tool_files
            if f["image"]
        ]
        self.tool_files, self.citations = [], []
        return content

    def _still_owned(self) -> bool:
        return Run.objects.filter(id=self.run.id, lease_owner=self.owner).exists()

    async def _close_open_messages(self, reason: str, error: dict[str, Any] | None = None) -> None:
        """Mark this run's unfinished messages and steps, keeping the partial text."""
        try:
            await self._persisted()
        except Exception:
            log.exception("run %s: storing the assistant message failed", self.run.id)
        if not await db(self._still_owned)():
            return
        rnd = self._round
        if rnd is not None and rnd.message is not None and rnd.message.status == Message.Status.IN_PROGRESS:
            content, msg_id = _text_content(rnd.text), rnd.message.id
            await db(
                lambda: Message.objects.filter(id=msg_id).update(
                    content=content, token_count=count_tokens(rnd.text) + 4
                )
            )()
        rows = await db(close_open_outputs)(self.run.id, reason, error)
        for event, payload in rows:
            self.emitter.emit(event, payload)


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
    run_id: str, reason: str, error: dict[str, Any] | None = None
) -> list[tuple[str, dict[str, Any]]]:
    """Close a run's in-progress messages and steps. Used by the engine and by lease recovery."""
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
        step.save()
        events.append((f"thread.run.step.{step_status}", step_obj(step)))
    return events


def resolve_citations(text: str, citations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """file_citation annotations for the markers (e.g. 【0†source】) that the answer actually uses.

    A citation is {"marker": str, "file_id": str, "quote": str}; the marker text is what the tool
    told the model to write, and the annotation's indexes point at it in the final text.
    """
    out = []
    for c in citations:
        marker = c["marker"]
        start = text.find(marker)
        while start >= 0:
            out.append(
                {
                    "type": "file_citation",
                    "text": marker,
                    "start_index": start,
                    "end_index": start + len(marker),
                    "file_citation": {"file_id": c["file_id"], "quote": c.get("quote", "")},
                }
            )
            start = text.find(marker, start + len(marker))
    return out


def _text_content(text: str) -> list[dict[str, Any]]:
    return [{"type": "text", "text": {"value": text, "annotations": []}}] if text else []


def _call_name(call: dict[str, Any]) -> str:
    if call.get("type") == "function":
        return call["function"]["name"]  # type: ignore[no-any-return]
    return call.get("type", "")  # type: ignore[no-any-return]


def _call_arguments(call: dict[str, Any]) -> str:
    if call.get("type") == "function":
        return call["function"].get("arguments", "")  # type: ignore[no-any-return]
    return call.get("_arguments") or json.dumps(call.get(call.get("type", ""), {}).get("input", ""))


def _call_output(call: dict[str, Any]) -> str | None:
    if call.get("type") == "function":
        return call["function"].get("output")  # type: ignore[no-any-return]
    return call.get("_output")
