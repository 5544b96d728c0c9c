"""Runs: starting one (with the one list of run parameters), tool outputs, cancelling, the run cap.

A request never executes a run: it stores a queued run (runs/state.py, the only writer of
Run.status) and nudges the executors, which claim it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction

from assistants_app.errors import InvalidRequest, ThreadBusy, TooManyActiveRuns
from assistants_app.lib import rowlock
from assistants_app.models import Assistant, File, Message, Run, RunStep, Thread
from assistants_app.models.run import ACTIVE_STATUSES, RunOrigin, RunStatus
from assistants_app.runs import nudges, state
from assistants_app.runs.outputs import close_open_outputs

from . import assistants, files, threads, tools, usage

# What a run may set over its assistant's values: the API's run parameters (api/request_specs.py
# run_option_fields, less assistant_id and stream), as stored on the Run row. None means "not given".
RUN_PARAMETERS = (
    "model",
    "instructions",
    "tools",
    "metadata",
    "temperature",
    "top_p",
    "max_prompt_tokens",
    "max_completion_tokens",
    "truncation_strategy",
    "response_format",
    "tool_choice",
    "parallel_tool_calls",
)
# Accepted by the API's shape (the SDK sends them), refused with a clear 400 here.
UNSUPPORTED_RUN_PARAMETERS = ("reasoning_effort",)


def run_values(
    assistant: Assistant, params: Mapping[str, Any], additional_instructions: str | None = None
) -> dict[str, Any]:
    """The Run row's values: the given parameters, checked, over the assistant's."""
    unknown = set(params) - set(RUN_PARAMETERS) - set(UNSUPPORTED_RUN_PARAMETERS)
    if unknown:
        raise InvalidRequest(
            f"Unsupported run parameter(s): {', '.join(sorted(unknown))}.", param=sorted(unknown)[0]
        )
    assistants.reject_unsupported(params, *UNSUPPORTED_RUN_PARAMETERS)
    given = {k: v for k, v in params.items() if v is not None}
    if "tools" in given:
        tools.check_tools(given["tools"])
    if "response_format" in given:
        given["response_format"] = assistants.response_format(given["response_format"])
    run_tools = given.get("tools", assistant.tools) or []
    tools.check_tool_choice(given.get("tool_choice"), run_tools)

    def pick(name: str, default: Any) -> Any:
        value = given.get(name)
        return default if value is None else value

    instructions = pick("instructions", assistant.instructions or "")
    if additional_instructions:
        instructions = (
            f"{instructions}\n\n{additional_instructions}" if instructions else additional_instructions
        )
    return {
        "model": pick("model", assistant.model),
        "instructions": instructions,
        "tools": run_tools,
        "tool_resources": assistant.tool_resources or {},
        "metadata": pick("metadata", {}),
        "temperature": pick("temperature", assistant.temperature),
        "top_p": pick("top_p", assistant.top_p),
        "max_prompt_tokens": given.get("max_prompt_tokens"),
        "max_completion_tokens": given.get("max_completion_tokens"),
        "truncation_strategy": pick("truncation_strategy", {"type": "auto", "last_messages": None}),
        "response_format": pick("response_format", assistant.response_format),
        "tool_choice": pick("tool_choice", "auto"),
        "parallel_tool_calls": pick("parallel_tool_calls", True),
    }


@dataclass(frozen=True)
class Started:
    run: Run
    messages: list[Message]  # the additional messages, as inserted


def start(
    thread: Thread,
    assistant: Assistant,
    *,
    additional_instructions: str | None = None,
    additional_messages: Iterable[Mapping[str, Any]] = (),
    origin: str = RunOrigin.API,
    **params: Any,
) -> Started:
    """Queue a run on `thread`, after inserting `additional_messages`, all in one transaction.

    `origin` says who can answer the run's function calls (RunOrigin): the chat page passes CHAT.

    The thread is locked and checked for an active run once (threads.lock_idle), before anything is
    stored: a refused run leaves no message and no attachment behind.
    """
    values = run_values(assistant, params, additional_instructions)
    extra = list(additional_messages)
    for i, m in enumerate(extra):
        threads.check_message(thread.owner, m, f"additional_messages[{i}]")
    stored: list[File] = []
    try:
        with transaction.atomic():
            threads.lock_idle(thread)
            check_run_quota(thread.owner_id, lock=True)
            usage.check_budget(thread.owner_id)
            messages = [threads.insert_message(thread, m, stored) for m in extra]
            run = state.create_run(
                thread=thread, assistant=assistant, assistant_ref=assistant.id, origin=origin, **values
            )
            transaction.on_commit(nudges.notify_queued)
    except IntegrityError as exc:
        files.remove_blobs(stored)
        # The partial unique index on active runs caught a race that the row lock did not.
        raise ThreadBusy(thread.id, None) from exc
    except BaseException:
        files.remove_blobs(stored)
        raise
    return Started(run, messages)


def start_run(thread: Thread, assistant: Assistant, **kwargs: Any) -> Run:
    return start(thread, assistant, **kwargs).run


def create_and_run(
    user: Any,
    assistant: Assistant,
    *,
    thread: Mapping[str, Any] | None = None,
    tool_resources: Mapping[str, Any] | None = None,
    **params: Any,
) -> tuple[Thread, Run]:
    """A new thread and its first run, atomically: a rejected run leaves no orphan thread behind."""
    resources = tools.check_tool_resources(user, tool_resources)
    spec = thread or {}
    with transaction.atomic():
        new = threads.create_thread(
            user,
            messages=spec.get("messages") or [],
            metadata=spec.get("metadata"),
            tool_resources=spec.get("tool_resources"),
            param="thread",
        )
        run = start_run(new, assistant, **params)
        if resources:
            # Still inside the transaction: no executor can have claimed the run yet.
            Run.objects.filter(id=run.id).update(tool_resources={**(run.tool_resources or {}), **resources})
    return new, run


def check_run_quota(owner_id: Any, *, lock: bool = False) -> None:
    """Refuse a new run when its owner already has RUN_MAX_ACTIVE_PER_USER queued or active runs.

    With `lock` (inside start's transaction) the owner's user row is locked first, so that two
    concurrent starts by one owner cannot both pass the count.
    """
    limit = int(settings.RUN_MAX_ACTIVE_PER_USER)
    if limit <= 0:
        return
    if lock:
        rowlock.lock(get_user_model().objects.filter(pk=owner_id))
    active = Run.objects.filter(thread__owner_id=owner_id, status__in=ACTIVE_STATUSES).count()
    if active >= limit:
        raise TooManyActiveRuns(limit)


def submit_tool_outputs(run: Run, tool_outputs: list[dict[str, Any]]) -> Run:
    if run.status != RunStatus.REQUIRES_ACTION or not run.required_action:
        raise InvalidRequest(
            f'Runs in status "{run.status}" do not accept tool outputs.', param="tool_outputs"
        )
    pending = [c["id"] for c in run.required_action["submit_tool_outputs"]["tool_calls"]]
    given: dict[str, str] = {}
    for i, item in enumerate(tool_outputs):
        call_id = item.get("tool_call_id")
        if not isinstance(call_id, str):
            raise InvalidRequest(
                "Each tool output needs a tool_call_id.", param=f"tool_outputs[{i}].tool_call_id"
            )
        if call_id in given:
            raise InvalidRequest(
                f"Duplicate tool_call_id '{call_id}'.", param=f"tool_outputs[{i}].tool_call_id"
            )
        output = item.get("output", "")
        if not isinstance(output, str):
            raise InvalidRequest("Tool output must be a string.", param=f"tool_outputs[{i}].output")
        given[call_id] = output
    unknown = [c for c in given if c not in pending]
    missing = [c for c in pending if c not in given]
    if unknown:
        raise InvalidRequest(
            f"Unknown tool_call_id(s): {', '.join(unknown)}. This run is waiting for: {', '.join(pending)}.",
            param="tool_outputs",
        )
    if missing:
        raise InvalidRequest(
            f"Expected tool outputs for call ids: {', '.join(pending)}; missing: {', '.join(missing)}.",
            param="tool_outputs",
        )
    with transaction.atomic():
        step = (
            RunStep.objects.select_for_update()
            .filter(run=run, type="tool_calls", status=RunStep.Status.IN_PROGRESS)
            .first()
        )
        if step is not None:
            calls = step.step_details.get("tool_calls", [])
            for call in calls:
                if call.get("type") == "function" and call["id"] in given:
                    call["function"]["output"] = given[call["id"]]
            step.step_details = {"type": "tool_calls", "tool_calls": calls}
            step.save(update_fields=["step_details"])
        updated = state.transition(run.id, RunStatus.QUEUED, expected=[RunStatus.REQUIRES_ACTION])
        if updated is None:
            raise InvalidRequest("The run is no longer waiting for tool outputs.", param="tool_outputs")
        transaction.on_commit(nudges.notify_queued)
    return updated


def cancel_run(run: Run) -> Run:
    with transaction.atomic():
        current = Run.objects.select_for_update().get(id=run.id)
        if current.status in (RunStatus.QUEUED, RunStatus.REQUIRES_ACTION):
            outputs = close_open_outputs(run.id, "run_cancelled")
            done = state.end_with_outputs(run.id, RunStatus.CANCELLED, outputs, expected=[current.status])
            if done is not None:
                return done
        elif current.status == RunStatus.IN_PROGRESS:
            done = state.transition(run.id, RunStatus.CANCELLING, expected=[RunStatus.IN_PROGRESS])
            if done is not None:
                transaction.on_commit(lambda: nudges.notify_cancel(run.id))
                return done
        elif current.status == RunStatus.CANCELLING:
            return current
    current.refresh_from_db()
    raise InvalidRequest(f"Cannot cancel run with status '{current.status}'.", code="run_not_active")
