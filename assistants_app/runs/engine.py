"""Executing one run: prompt -> backend stream -> tool calls -> next round, until the run ends.

The engine runs on a worker (never inside a request or a consumer). It writes `Run.status` only
through `state`, and everything else through `outputs` (message and step rows and their events,
checkpointed every RUN_CHECKPOINT_SECONDS rather than per token), `tool_calls` (offering and
executing tools) and `annotations` (the answer's final content).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings
from django.utils import timezone

from assistants_app.asyncdb import db
from assistants_app.backends import BackendError, get_backend
from assistants_app.backends.base import ChatRequest, Finish, TextDelta, ToolCallDelta, Usage
from assistants_app.models import Assistant, Run, RunStep
from assistants_app.models.run import RunStatus
from assistants_app.serializers import step_obj
from assistants_app.tools import hosted
from assistants_app.tools.function_endpoints.call import Endpoint, endpoints_of

from . import state, tool_calls, vision
from .annotations import final_content
from .context import PromptTooLarge, build_prompt
from .emitter import Emitter
from .events import get_event_log
from .outputs import LeaseLost, Outputs
from .rounds import Round, TokenBudget

log = logging.getLogger(__name__)


class RunCancelled(Exception):
    pass


class RunExpired(Exception):
    pass


class _LimitReached(Exception):
    pass


class Execution:
    def __init__(self, run: Run, *, cancel: asyncio.Event | None = None) -> None:
        self.run = run
        self.owner = run.lease_owner
        # Set by the executor when the lease was lost: stop without writing anything more.
        self.lost = False
        self.cancel = cancel or asyncio.Event()
        self.emitter = Emitter(get_event_log(), run.id)
        self.outputs = Outputs(run, self.emitter)
        self.usage = dict(run.usage or {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0})
        self.assistant: Assistant | None = None
        self.endpoints: dict[str, Endpoint] = {}  # the assistant's function endpoints, by function
        self._round: Round | None = None
        self._steps: list[RunStep] | None = None  # the run's tool steps as _load read them
        # Outputs of hosted tools that belong in the next assistant message.
        self.tool_files: list[hosted.OutputFile] = []
        self.citations: list[hosted.Citation] = []

    # ---------------------------------------------------------------------------------------------
    async def execute(self) -> None:
        try:
            await self._execute()
        except LeaseLost:
            self.lost = True
            log.warning(
                "run %s: lease lost before its output went out, leaving it to its new owner", self.run.id
            )
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
        except asyncio.CancelledError:
            # The executor is shutting down: keep the text streamed since the last checkpoint, which
            # the recovery of this run (after the restart) then closes the message with.
            await self.outputs.save_open_text(self._round)
            raise
        finally:
            self.outputs.cancel_pending()
            await self.emitter.close()

    async def _execute(self) -> None:
        # A first execution without functions has nothing to read: no trip to a thread before the
        # prompt, one hop less before the first token.
        loaded = self._load() if self._loads_from_memory() else await db(self._load)()
        self.assistant, answered, self.endpoints = loaded
        if answered is not None:
            self.emitter.emit("thread.run.step.completed", step_obj(answered))
        for _ in range(settings.RUN_MAX_TOOL_ROUNDS):
            self._check_deadlines()
            tools, hosted_by_name = tool_calls.tool_specs(self.run)
            # One trip to the database thread per round: each hop adds to time-to-first-token.
            # The first round reuses the tool steps _load read; later rounds added steps of their own.
            steps, self._steps = self._steps, None
            prompt = await db(
                lambda tools=tools, steps=steps: build_prompt(
                    self.run, tool_calls.tool_tail(self.run, steps), tools
                )
            )()
            refused = vision.assistant_refusal(self.assistant, self.run.model, prompt.messages)
            if refused is not None:
                raise refused
            backend = get_backend(self.assistant)
            max_tokens = self._remaining_completion_tokens()
            if max_tokens is not None and max_tokens <= 0:
                await self._finish_incomplete("max_completion_tokens")
                return
            request = ChatRequest(
                model=self.run.model,
                messages=prompt.messages,
                tools=tools,
                tool_choice=tool_calls.tool_choice(self.run) if tools else None,
                parallel_tool_calls=self.run.parallel_tool_calls if tools else None,
                temperature=self.run.temperature,
                top_p=self.run.top_p,
                max_tokens=max_tokens,
                response_format=self._response_format(),
            )
            rnd = self._round = Round(prompt_tokens=prompt.prompt_tokens)
            try:
                await self._race(self._stream(backend, request, rnd, hosted_by_name))
            except _LimitReached:
                rnd.finish = "length"
            self._account(rnd)
            if rnd.finish == "length":
                await self._close_message(rnd, reason="max_tokens")
                await self._finish_incomplete("max_completion_tokens")
                return
            await self._close_message(rnd)
            if not rnd.calls:
                await self._finish_completed()
                return
            executed = await tool_calls.execute(
                self.run, self.outputs, rnd, hosted_by_name, self._race, self.endpoints
            )
            if executed.unanswerable:
                await self._finish_failed(
                    "server_error", tool_calls.unanswerable_message(executed.unanswerable)
                )
                return
            self.tool_files += executed.files
            self.citations += executed.citations
            if executed.pending:
                await self._require_action(executed.pending)
                return
        await self._finish_failed(
            "server_error", f"The run made more than {settings.RUN_MAX_TOOL_ROUNDS} tool rounds."
        )

    # ---------------------------------------------------------------------------------------------
    async def _race(self, coro: Any) -> Any:
        """`coro`'s result, unless the run is cancelled or expires first (which cancels it: a stream
        is then closed)."""
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
            return task.result()
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
        self, backend: Any, request: ChatRequest, rnd: Round, hosted_by_name: tool_calls.Hosted
    ) -> None:
        # The upstream is asked for at most max_tokens; the budget stops one that ignores it. Tokens
        # are counted once per round (Round.count_generated), not per delta.
        budget = TokenBudget(request.max_tokens) if request.max_tokens is not None else None
        outputs = self.outputs
        stream = backend.stream(request)
        outputs.start_marking_streamed()
        try:
            async for ev in stream:
                rnd.started = True
                if isinstance(ev, TextDelta):
                    text = budget.take(ev.text) if budget is not None else ev.text
                    if text:
                        if rnd.message is None:
                            await outputs.open_message(rnd)
                        rnd.add_text(text)
                        outputs.text_delta(rnd, text)
                        outputs.maybe_checkpoint(rnd)
                    if budget is not None and budget.exhausted:
                        raise _LimitReached
                elif isinstance(ev, ToolCallDelta):
                    # Text before tool calls is its own message; close it so its step precedes the tool step.
                    await self._close_message(rnd)
                    await tool_calls.on_delta(self.outputs, rnd, ev, hosted_by_name)
                    if budget is not None and ev.arguments and budget.add(ev.arguments):
                        raise _LimitReached
                elif isinstance(ev, Usage):
                    rnd.usage = ev
                elif isinstance(ev, Finish):
                    rnd.finish = ev.reason
        finally:
            await stream.aclose()

    def _to_read(self) -> tuple[bool, bool]:
        """What `_load` must read: (function endpoints, tool steps). Endpoints answer function
        calls only; a run's tool steps are all written by its own executions, so on its first
        claim there are none."""
        functions = any(t.get("type") == "function" for t in self.run.tools or [])
        return functions, self.run.attempts > 1

    def _loads_from_memory(self) -> bool:
        """Whether `_load` makes no query: the claim brought the assistant, and there is nothing
        else to read."""
        return Run.assistant.is_cached(self.run) and not any(self._to_read())

    def _load(self) -> tuple[Assistant | None, RunStep | None, dict[str, Endpoint]]:
        """The assistant, (after submit_tool_outputs) the waiting step, now completed, and the
        assistant's function endpoints. The run's tool steps are kept for the first prompt."""
        assistant = self.run.assistant  # loaded by the claim (None: deleted since)
        read_endpoints, read_steps = self._to_read()
        endpoints = endpoints_of(self.run.assistant_ref) if read_endpoints else {}
        self._steps = tool_calls.tool_steps(self.run) if read_steps else []
        step = next((s for s in self._steps if s.status == RunStep.Status.IN_PROGRESS), None)
        calls = step.step_details.get("tool_calls", []) if step is not None else []
        if step is None or any(tool_calls.call_output(c) is None for c in calls):
            return assistant, None, endpoints
        step.status, step.completed_at = RunStep.Status.COMPLETED, timezone.now()
        step.save()
        return assistant, step, endpoints

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

    def _account(self, rnd: Round | None, *, cut_short: bool = False) -> None:
        """Add the round's usage to the run's, once: the upstream's figures when it sent them, else
        our count of the prompt and of what was generated. A round cut short (cancelled, failed,
        expired) counts only if the upstream had started answering: that is what it bills."""
        if rnd is None or rnd.accounted or (cut_short and not rnd.started):
            return
        rnd.accounted = True
        rnd.count_generated()
        prompt = rnd.usage.prompt_tokens if rnd.usage else rnd.prompt_tokens
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
        self._account(self._round, cut_short=True)
        await self._close_open_messages("max_tokens")
        if await self._end(RunStatus.INCOMPLETE, {"incomplete_details": {"reason": reason}}) is None:
            await self._finish_cancelled()

    async def _finish_failed(self, code: str, message: str) -> None:
        self._account(self._round, cut_short=True)
        # The technical detail is for the operator; chat users see plain words (services/chat_errors).
        log.warning("run %s failed: %s: %s", self.run.id, code, message)
        await self._close_open_messages("run_failed", error={"code": code, "message": message})
        await self._end(
            RunStatus.FAILED,
            {"last_error": {"code": code, "message": message}},
            expected=[RunStatus.IN_PROGRESS, RunStatus.CANCELLING],
        )

    async def _finish_cancelled(self) -> None:
        self._account(self._round, cut_short=True)
        await self._close_open_messages("run_cancelled")
        await db(state.transition)(
            self.run.id, RunStatus.CANCELLING, expected=[RunStatus.IN_PROGRESS], owner=self.owner
        )
        await self._end(RunStatus.CANCELLED, {}, expected=[RunStatus.CANCELLING])

    async def _finish_expired(self) -> None:
        self._account(self._round, cut_short=True)
        await self._close_open_messages("run_expired")
        await self._end(RunStatus.EXPIRED, {}, expected=[RunStatus.IN_PROGRESS, RunStatus.CANCELLING])

    async def _close_message(self, rnd: Round, *, reason: str | None = None) -> None:
        """End the round's message (if one is open) with its final content."""
        if not rnd.message_open():
            return
        content = final_content(rnd.text, self.tool_files, self.citations)
        self.tool_files, self.citations = [], []
        await self.outputs.close_message(rnd, content, reason=reason)

    def _still_owned(self) -> bool:
        return Run.objects.filter(id=self.run.id, lease_owner=self.owner).exists()

    async def _close_open_messages(self, reason: str, error: dict[str, Any] | None = None) -> None:
        """Mark this run's unfinished messages and steps, keeping the partial text."""
        try:
            await self.outputs.persisted()
        except Exception:
            log.exception("run %s: storing the assistant message failed", self.run.id)
        if not await db(self._still_owned)():
            return
        await self.outputs.close_open(self._round, reason, error)
