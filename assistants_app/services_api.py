"""Use cases the REST API adds to services.py: assistant CRUD, metadata edits, deletions,
create_and_run, and checks on what a request refers to (tools, files, vector stores).

Inputs arrive already shape-checked (api/params.py); these functions check meaning: that referenced
objects exist and belong to the caller, that a tool type is available on this server, that nothing
is deleted from under a running run.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from . import services, services_storage, services_vector_stores
from .api.sniff import sniff_content_type
from .errors import InvalidRequest, ThreadBusy
from .models import Assistant, File, Message, Run, Thread
from .tools import hosted


# --- references ---------------------------------------------------------------------------------------
def check_tools(tools: list[dict[str, Any]], param: str = "tools") -> list[dict[str, Any]]:
    names: set[str] = set()
    for i, tool in enumerate(tools):
        kind = tool["type"]
        if kind == "function":
            name = tool["function"]["name"]
            if name in names:
                raise InvalidRequest(
                    f"Duplicate function name '{name}' in {param}.", param=f"{param}[{i}].function.name"
                )
            names.add(name)
        elif hosted.get(kind) is None:
            raise InvalidRequest(
                f"The '{kind}' tool is not available on this server.",
                param=f"{param}[{i}].type",
                code="unsupported_tool",
            )
    return tools


def check_file_ids(user: Any, file_ids: list[str], param: str) -> None:
    found = set(File.objects.filter(owner=user, id__in=file_ids).values_list("id", flat=True))
    for i, fid in enumerate(file_ids):
        if fid not in found:
            raise InvalidRequest(
                f"No file found with id '{fid}'.", param=f"{param}[{i}]", code="invalid_file_id"
            )


def check_file_id(user: Any, file_id: str, param: str) -> None:
    if not File.objects.filter(owner=user, id=file_id).exists():
        raise InvalidRequest(f"No file found with id '{file_id}'.", param=param, code="invalid_file_id")


def check_tool_resources(
    user: Any, resources: dict[str, Any] | None, param: str = "tool_resources"
) -> dict[str, Any]:
    if not resources:
        return {}
    out: dict[str, Any] = {}
    ci = resources.get("code_interpreter")
    if ci is not None:
        ids = ci.get("file_ids", [])
        check_file_ids(user, ids, f"{param}.code_interpreter.file_ids")
        out["code_interpreter"] = {"file_ids": ids}
    fs = resources.get("file_search")
    if fs is not None:
        # Ownership, expiry, at most one store; inline `vector_stores` are created here, so callers
        # run this inside the transaction that saves the assistant or thread.
        out["file_search"] = services_vector_stores.file_search_resources(user, fs, f"{param}.file_search")
    return out


def reject_unsupported(fields: dict[str, Any], *names: str) -> None:
    for name in names:
        if fields.get(name) is not None:
            raise InvalidRequest(
                f"'{name}' is not supported by this server.", param=name, code="unsupported_parameter"
            )


def message_fields(user: Any, fields: dict[str, Any], param: str = "") -> dict[str, Any]:
    """Check a message's file references; returns the keyword arguments services expect."""
    prefix = f"{param}." if param else ""
    content = fields["content"]
    if isinstance(content, list):
        for i, part in enumerate(content):
            if part["type"] == "image_file":
                check_file_id(user, part["image_file"]["file_id"], f"{prefix}content[{i}].image_file.file_id")
    attachments = fields.get("attachments") or []
    for i, att in enumerate(attachments):
        check_file_id(user, att["file_id"], f"{prefix}attachments[{i}].file_id")
        for j, tool in enumerate(att.get("tools") or []):
            if hosted.get(tool["type"]) is None:
                raise InvalidRequest(
                    f"The '{tool['type']}' tool is not available on this server.",
                    param=f"{prefix}attachments[{i}].tools[{j}].type",
                    code="unsupported_tool",
                )
    return {
        "role": fields["role"],
        "content": content,
        "attachments": [{"file_id": a["file_id"], "tools": a.get("tools") or []} for a in attachments],
        "metadata": fields.get("metadata") or {},
    }


# --- assistants -----------------------------------------------------------------------------------
_ASSISTANT_COLUMNS = ("model", "name", "description", "instructions", "metadata", "temperature", "top_p")


def _assistant_values(user: Any, fields: dict[str, Any]) -> dict[str, Any]:
    reject_unsupported(fields, "reasoning_effort")
    values = {k: fields[k] for k in _ASSISTANT_COLUMNS if k in fields}
    if "tools" in fields:
        values["tools"] = check_tools(fields["tools"])
    if "tool_resources" in fields:
        values["tool_resources"] = check_tool_resources(user, fields["tool_resources"])
    if "response_format" in fields:
        rf = fields["response_format"]
        values["response_format"] = None if rf == "auto" else rf
    return values


def create_assistant(user: Any, fields: dict[str, Any]) -> Assistant:
    # Atomic: tool_resources may create inline vector stores, which a failed create must not leave behind.
    with transaction.atomic():
        return Assistant.objects.create(owner=user, **_assistant_values(user, fields))


def update_assistant(assistant: Assistant, fields: dict[str, Any]) -> Assistant:
    values = _assistant_values(assistant.owner, fields)
    for k, v in values.items():
        setattr(assistant, k, v)
    if values:
        assistant.save(update_fields=list(values))
    return assistant


def delete_assistant(assistant: Assistant) -> None:
    # Runs keep assistant_ref (the FK is SET_NULL), so past runs still say which assistant ran them.
    assistant.delete()


# --- threads and messages --------------------------------------------------------------------------
def create_thread(user: Any, fields: dict[str, Any], param: str = "") -> Thread:
    prefix = f"{param}." if param else ""
    messages = [
        message_fields(user, m, f"{prefix}messages[{i}]") for i, m in enumerate(fields.get("messages") or [])
    ]
    # Atomic: tool_resources may create inline vector stores, which a failed create must not leave behind.
    with transaction.atomic():
        return services.create_thread(
            user,
            messages=messages,
            metadata=fields.get("metadata") or {},
            tool_resources=check_tool_resources(
                user, fields.get("tool_resources"), f"{prefix}tool_resources"
            ),
        )


def update_thread(thread: Thread, fields: dict[str, Any]) -> Thread:
    update = []
    if "metadata" in fields:
        thread.metadata = fields["metadata"]
        update.append("metadata")
    if "tool_resources" in fields:
        thread.tool_resources = check_tool_resources(thread.owner, fields["tool_resources"])
        update.append("tool_resources")
    if update:
        thread.save(update_fields=update)
    return thread


def delete_thread(thread: Thread) -> None:
    with transaction.atomic():
        Thread.objects.select_for_update().filter(id=thread.id).first()
        run = services.active_run(thread)
        if run is not None:
            # The executor is writing into this thread: deleting it would crash the run mid-write.
            raise ThreadBusy(thread.id, run.id)
        thread.delete()


def create_message(user: Any, thread: Thread, fields: dict[str, Any]) -> Message:
    return services.post_message(thread, **message_fields(user, fields))


def update_metadata(obj: Message | Run, metadata: dict[str, str] | None) -> Message | Run:
    if metadata is not None:
        type(obj).objects.filter(id=obj.id).update(metadata=metadata)
        obj.metadata = metadata
    return obj


def delete_message(message: Message) -> None:
    if message.status == Message.Status.IN_PROGRESS:
        raise InvalidRequest(
            f"Message {message.id} is being written by run {message.run_id}; cancel the run or wait for it.",
            code="message_in_progress",
        )
    message.delete()


# --- runs ---------------------------------------------------------------------------------------------
_RUN_PASSTHROUGH = (
    "model",
    "instructions",
    "metadata",
    "temperature",
    "top_p",
    "max_prompt_tokens",
    "max_completion_tokens",
    "truncation_strategy",
    "tool_choice",
    "parallel_tool_calls",
)


def _run_overrides(assistant: Assistant, fields: dict[str, Any]) -> dict[str, Any]:
    reject_unsupported(fields, "reasoning_effort")
    overrides = {k: fields[k] for k in _RUN_PASSTHROUGH if k in fields}
    if "tools" in fields:
        overrides["tools"] = check_tools(fields["tools"])
    if "response_format" in fields:
        rf = fields["response_format"]
        overrides["response_format"] = None if rf == "auto" else rf
    tools = overrides.get("tools", assistant.tools) or []
    choice = overrides.get("tool_choice")
    if isinstance(choice, dict):
        if choice["type"] == "function":
            name = choice["function"]["name"]
            if not any(t.get("type") == "function" and t["function"]["name"] == name for t in tools):
                raise InvalidRequest(
                    f"tool_choice names the function '{name}', which is not among the run's tools.",
                    param="tool_choice.function.name",
                )
        elif not any(t.get("type") == choice["type"] for t in tools):
            raise InvalidRequest(
                f"tool_choice names '{choice['type']}', which is not among the run's tools.",
                param="tool_choice.type",
            )
    elif choice == "required" and not tools:
        raise InvalidRequest("tool_choice 'required' needs at least one tool.", param="tool_choice")
    return overrides


def start_run(user: Any, thread: Thread, fields: dict[str, Any]) -> Run:
    assistant = services.get_assistant(user, fields["assistant_id"], param="assistant_id")
    extra = [
        message_fields(user, m, f"additional_messages[{i}]")
        for i, m in enumerate(fields.get("additional_messages") or [])
    ]
    return services.start_run(
        thread,
        assistant,
        additional_instructions=fields.get("additional_instructions"),
        additional_messages=extra,
        **_run_overrides(assistant, fields),
    )


def create_and_run(user: Any, fields: dict[str, Any]) -> tuple[Thread, Run]:
    """A new thread and its first run, atomically: a rejected run leaves no orphan thread behind."""
    assistant = services.get_assistant(user, fields["assistant_id"], param="assistant_id")
    overrides = _run_overrides(assistant, fields)
    resources = check_tool_resources(user, fields.get("tool_resources"))
    with transaction.atomic():
        thread = create_thread(user, fields.get("thread") or {}, "thread")
        run = services.start_run(thread, assistant, **overrides)
        if resources:
            # Still inside the transaction: no executor can have claimed the run yet.
            Run.objects.filter(id=run.id).update(tool_resources={**(run.tool_resources or {}), **resources})
    return thread, run


# --- files ----------------------------------------------------------------------------------------
def store_file(
    user: Any, upload: Any, *, purpose: str, filename: str, expires_after: int | None = None
) -> File:
    """Save an upload under a server-chosen path (files.file_upload_path), with its size, sha256 and a
    content type sniffed from its bytes; the client's filename is kept only as a display name."""
    sha = hashlib.sha256()
    size = 0
    head = b""
    for chunk in upload.chunks():
        if len(head) < 4096:
            head += chunk[: 4096 - len(head)]
        sha.update(chunk)
        size += len(chunk)
    upload.seek(0)
    content_type = sniff_content_type(head, filename)
    row = File(
        owner=user,
        filename=filename,
        purpose=purpose,
        bytes=size,
        sha256=sha.hexdigest(),
        content_type=content_type,
        expires_at=timezone.now() + timedelta(seconds=expires_after) if expires_after else None,
    )
    # The storage name comes from file_upload_path (owner id / file id), never from `filename`.
    return services_storage.save_file(row, upload)


def delete_file(file: File) -> None:
    file.delete()  # the blob goes after commit (services_storage)
