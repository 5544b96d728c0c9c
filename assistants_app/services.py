"""Use cases shared by the REST API, the chat page and the admin. Callers parse and render; every
permission check and state change happens here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from .errors import InvalidRequest, NotFound, ThreadBusy, TooManyActiveRuns
from .models import Assistant, File, Message, Run, RunStep, Thread, VectorStore, VectorStoreFile
from .models.run import ACTIVE_STATUSES
from .runs import signals, state
from .runs.context import message_tokens
from .runs.engine import close_open_outputs
from .runs.events import get_event_log

User = AbstractBaseUser


# --- lookups: another owner's object is indistinguishable from a missing one ----------------------
def get_assistant(user: Any, assistant_id: str, *, param: str | None = None) -> Assistant:
    a = Assistant.objects.filter(id=assistant_id, owner=user).first()
    if a is None:
        raise NotFound("assistant", assistant_id, param=param)
    return a


def get_thread(user: Any, thread_id: str) -> Thread:
    t = Thread.objects.filter(id=thread_id, owner=user).first()
    if t is None:
        raise NotFound("thread", thread_id)
    return t


def get_message(user: Any, thread_id: str, message_id: str) -> Message:
    m = Message.objects.filter(id=message_id, thread_id=thread_id, thread__owner=user).first()
    if m is None:
        raise NotFound("message", message_id)
    return m


def get_run(user: Any, thread_id: str, run_id: str) -> Run:
    r = Run.objects.filter(id=run_id, thread_id=thread_id, thread__owner=user).first()
    if r is None:
        raise NotFound("run", run_id)
    return r


def get_step(user: Any, thread_id: str, run_id: str, step_id: str) -> RunStep:
    s = RunStep.objects.filter(
        id=step_id, run_id=run_id, run__thread_id=thread_id, run__thread__owner=user
    ).first()
    if s is None:
        raise NotFound("run step", step_id)
    return s


def active_run(thread: Thread) -> Run | None:
    return Run.objects.filter(thread=thread, status__in=ACTIVE_STATUSES).first()


# --- threads and messages ---------------------------------------------------------------------------
def normalize_content(content: str | list[dict[str, Any]]) -> list[dict[str, Any]]:
    if isinstance(content, str):
        return [{"type": "text", "text": {"value": content, "annotations": []}}]
    parts: list[dict[str, Any]] = []
    for i, part in enumerate(content):
        kind = part.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": {"value": part.get("text", ""), "annotations": []}})
        elif kind in ("image_file", "image_url"):
            parts.append({"type": kind, kind: part.get(kind)})
        else:
            raise InvalidRequest(f"Invalid content part type {kind!r}.", param=f"content[{i}].type")
    return parts


def create_thread(
    user: Any,
    *,
    messages: Iterable[dict[str, Any]] = (),
    metadata: dict[str, str] | None = None,
    tool_resources: dict[str, Any] | None = None,
    is_chat: bool = False,
) -> Thread:
    with transaction.atomic():
        thread = Thread.objects.create(
            owner=user, metadata=metadata or {}, tool_resources=tool_resources or {}, is_chat=is_chat
        )
        for m in messages:
            _insert_message(thread, **m)
    return thread


def _insert_message(
    thread: Thread,
    *,
    role: str = "user",
    content: str | list[dict[str, Any]],
    attachments: list[dict[str, Any]] | None = None,
    metadata: dict[str, str] | None = None,
) -> Message:
    if role not in ("user", "assistant"):
        raise InvalidRequest("role must be 'user' or 'assistant'.", param="role")
    parts = normalize_content(content)
    message = Message.objects.create(
        thread=thread,
        role=role,
        content=parts,
        attachments=attachments or [],
        metadata=metadata or {},
        token_count=message_tokens(parts),
    )
    searchable = [
        a["file_id"]
        for a in attachments or []
        if any(t.get("type") == "file_search" for t in a.get("tools") or [])
    ]
    if searchable:
        attach_to_thread_store(thread, searchable)
    return message


def attach_to_thread_store(thread: Thread, file_ids: list[str]) -> VectorStore:
    """Files attached for file search go into the thread's own vector store, as in the Assistants
    API; the executors index them off the request path."""
    resources = dict(thread.tool_resources or {})
    fs = dict(resources.get("file_search") or {})
    store = VectorStore.objects.filter(id__in=fs.get("vector_store_ids") or [], owner=thread.owner).first()
    if store is None:
        store = VectorStore.objects.create(owner=thread.owner, name=f"Files of {thread.id}")
        fs["vector_store_ids"] = [store.id]
        resources["file_search"] = fs
        thread.tool_resources = resources
        thread.save(update_fields=["tool_resources"])
    for f in File.objects.filter(id__in=file_ids, owner=thread.owner):
        VectorStoreFile.objects.get_or_create(vector_store=store, file=f)
    return store


def post_message(thread: Thread, **fields: Any) -> Message:
    with transaction.atomic():
        # Lock out a concurrent start_run on the same thread for the duration of the check.
        Thread.objects.select_for_update().filter(id=thread.id).first()
        run = active_run(thread)
        if run is not None:
            raise ThreadBusy(thread.id, run.id)
        return _insert_message(thread, **fields)


# --- runs ---------------------------------------------------------------------------------------------
RUN_OVERRIDES = (
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


def start_run(
    thread: Thread,
    assistant: Assistant,
    *,
    additional_instructions: str | None = None,
    additional_messages: Iterable[dict[str, Any]] = (),
    **overrides: Any,
) -> Run:
    unknown = set(overrides) - set(RUN_OVERRIDES)
    if unknown:
        raise InvalidRequest(
            f"Unsupported run parameter(s): {', '.join(sorted(unknown))}.", param=sorted(unknown)[0]
        )
    instructions = overrides.get("instructions")
    if instructions is None:
        instructions = assistant.instructions or ""
    if additional_instructions:
        instructions = (
            f"{instructions}\n\n{additional_instructions}" if instructions else additional_instructions
        )

    def pick(name: str, default: Any) -> Any:
        value = overrides.get(name)
        return default if value is None else value

    try:
        with transaction.atomic():
            Thread.objects.select_for_update().filter(id=thread.id).first()
            busy = active_run(thread)
            if busy is not None:
                raise ThreadBusy(thread.id, busy.id)
            check_run_quota(thread.owner_id, lock=True)
            for m in additional_messages:
                _insert_message(thread, **m)
            run = state.create_run(
                thread=thread,
                assistant=assistant,
                assistant_ref=assistant.id,
                model=pick("model", assistant.model),
                instructions=instructions,
                tools=pick("tools", assistant.tools),
                tool_resources=assistant.tool_resources or {},
                metadata=pick("metadata", {}),
                temperature=pick("temperature", assistant.temperature),
                top_p=pick("top_p", assistant.top_p),
                max_prompt_tokens=overrides.get("max_prompt_tokens"),
                max_completion_tokens=overrides.get("max_completion_tokens"),
                truncation_strategy=pick("truncation_strategy", {"type": "auto", "last_messages": None}),
                response_format=pick("response_format", assistant.response_format),
                tool_choice=pick("tool_choice", "auto"),
                parallel_tool_calls=pick("parallel_tool_calls", True),
            )
            transaction.on_commit(signals.notify_queued)
    except IntegrityError as exc:
        # The partial unique index on active runs caught a race that the row lock did not.
        raise ThreadBusy(thread.id, None) from exc
    return run


def check_run_quota(owner_id: Any, *, lock: bool = False) -> None:
    """Refuse a new run when its owner already has RUN_MAX_ACTIVE_PER_USER queued or active runs.

    With `lock` (inside start_run's transaction) the owner's user row is locked first, so that two
    concurrent starts by one owner cannot both pass the count. Without it this is an early check
    (the chat page asks before it stores attachments); start_run's check is the one that counts.
    """
    limit = int(settings.RUN_MAX_ACTIVE_PER_USER)
    if limit <= 0:
        return
    if lock:
        get_user_model().objects.select_for_update().filter(pk=owner_id).first()
    active = Run.objects.filter(thread__owner_id=owner_id, status__in=ACTIVE_STATUSES).count()
    if active >= limit:
        raise TooManyActiveRuns(limit)


def submit_tool_outputs(run: Run, tool_outputs: list[dict[str, Any]]) -> Run:
    if run.status != state.REQUIRES_ACTION or not run.required_action:
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
            .filter(run=run, type="tool_calls", status="in_progress")
            .first()
        )
        if step is not None:
            calls = step.step_details.get("tool_calls", [])
            for call in calls:
                if call.get("type") == "function" and call["id"] in given:
                    call["function"]["output"] = given[call["id"]]
            step.step_details = {"type": "tool_calls", "tool_calls": calls}
            step.save(update_fields=["step_details"])
        updated = state.transition(run.id, state.QUEUED, expected=[state.REQUIRES_ACTION])
        if updated is None:
            raise InvalidRequest("The run is no longer waiting for tool outputs.", param="tool_outputs")
        transaction.on_commit(signals.notify_queued)
    return updated


def cancel_run(run: Run) -> Run:
    with transaction.atomic():
        current = Run.objects.select_for_update().get(id=run.id)
        if current.status in (state.QUEUED, state.REQUIRES_ACTION):
            outputs = close_open_outputs(run.id, "run_cancelled")
            done = state.transition(run.id, state.CANCELLED, expected=[current.status])
            if done is not None:
                log = get_event_log()
                transaction.on_commit(lambda: [log.publish(run.id, e, d) for e, d in outputs])
                return done
        elif current.status == state.IN_PROGRESS:
            done = state.transition(run.id, state.CANCELLING, expected=[state.IN_PROGRESS])
            if done is not None:
                transaction.on_commit(lambda: signals.notify_cancel(run.id))
                return done
        elif current.status == state.CANCELLING:
            return current
    current.refresh_from_db()
    raise InvalidRequest(f"Cannot cancel run with status '{current.status}'.", code="run_not_active")
