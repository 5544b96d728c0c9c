"""Threads and their messages.

`lock_idle` is the one home of "a thread with an active run accepts no new message or run, and is not
deleted from under it": posting a message, starting a run and deleting a thread all go through it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from assistants_app.errors import InvalidRequest, ThreadBusy
from assistants_app.lib import rowlock
from assistants_app.models import File, Message, Run, Thread
from assistants_app.runs import vision
from assistants_app.runs.context import message_tokens

from . import files, lookups, tools, vector_stores


def lock_idle(thread: Thread) -> None:
    """Lock the thread's row and refuse (ThreadBusy) if it has an active run.

    Call inside a transaction: the lock holds until it ends, so a concurrent start_run, post_message
    or delete on the same thread waits and then sees this one's outcome. (The partial unique index
    "one_active_run_per_thread" still backs this up: see runs.start.)
    """
    rowlock.lock(Thread.objects.filter(id=thread.id))
    run = lookups.active_run(thread)
    if run is not None:
        raise ThreadBusy(thread.id, run.id)


# --- messages -----------------------------------------------------------------------------------
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


def check_message(user: Any, fields: Mapping[str, Any], param: str = "") -> None:
    """What a message refers to: the user's live files, tools available on this server.

    An attachment is {"file_id", "tools"}, or {"upload", "tools"} for a file to store with the
    message (the chat page's attachments); likewise an image_file part's {"file_id"} or {"upload"}
    (the chat page's images): uploads are checked when they are stored.
    """
    prefix = f"{param}." if param else ""
    role = fields.get("role", "user")
    if role not in ("user", "assistant"):
        raise InvalidRequest("role must be 'user' or 'assistant'.", param=f"{prefix}role")
    content = fields["content"]
    if isinstance(content, list):
        for i, part in enumerate(content):
            if part.get("type") == "image_file" and "upload" not in part["image_file"]:
                check_image_file(
                    user, part["image_file"]["file_id"], f"{prefix}content[{i}].image_file.file_id"
                )
            elif part.get("type") == "image_url":
                problem = vision.url_problem(part["image_url"]["url"])
                if problem is not None:
                    raise InvalidRequest(
                        f"Invalid image_url: {problem}.",
                        param=f"{prefix}content[{i}].image_url.url",
                        code="invalid_image_url",
                    )
    for i, att in enumerate(fields.get("attachments") or []):
        if "upload" not in att:
            lookups.check_file_id(user, att["file_id"], f"{prefix}attachments[{i}].file_id")
        tools.check_attachment_tools(att.get("tools") or [], f"{prefix}attachments[{i}].tools")


def check_image_file(user: Any, file_id: str, param: str) -> None:
    """An image_file part's file: one of the user's live files, and an image the model may be sent."""
    lookups.check_file_id(user, file_id, param)
    f = lookups.live_files(user).only("content_type", "bytes").get(id=file_id)
    problem = vision.image_problem(f.content_type, f.bytes)
    if problem is not None:
        raise InvalidRequest(
            f"File {file_id} can't be an image_file: {problem}.", param=param, code="invalid_image_file"
        )


def insert_message(thread: Thread, fields: Mapping[str, Any], stored: list[File] | None = None) -> Message:
    """Insert a checked message (check_message); uploads among its attachments are stored first and
    appended to `stored`, so that a caller whose transaction fails can remove their blobs."""
    attachments: list[dict[str, Any]] = []
    searchable: list[str] = []
    for att in fields.get("attachments") or []:
        file_id: str = att.get("file_id", "")
        if "upload" in att:
            upload: UploadedFile[bytes] = att["upload"]
            f = files.store_file(thread.owner_id, upload, filename=upload.name or "", purpose="assistants")
            if stored is not None:
                stored.append(f)
            file_id = f.id
        tools_ = list(att.get("tools") or [])
        attachments.append({"file_id": file_id, "tools": tools_})
        if any(t.get("type") == "file_search" for t in tools_):
            searchable.append(file_id)
    content = fields["content"]
    if isinstance(content, list):
        content = [_store_image(thread, part, stored) for part in content]
    parts = normalize_content(content)
    message = Message.objects.create(
        thread=thread,
        role=fields.get("role", "user"),
        content=parts,
        attachments=attachments,
        metadata=fields.get("metadata") or {},
        token_count=message_tokens(parts),
    )
    if searchable:
        vector_stores.attach_to_thread_store(thread, searchable)
    return message


def _store_image(thread: Thread, part: dict[str, Any], stored: list[File] | None) -> dict[str, Any]:
    """An image_file part holding an upload, stored (purpose "vision") and then referred to by id."""
    spec = part.get("image_file") if part.get("type") == "image_file" else None
    if not spec or "upload" not in spec:
        return part
    upload: UploadedFile[bytes] = spec["upload"]
    f = files.store_file(thread.owner_id, upload, filename=upload.name or "", purpose="vision")
    if stored is not None:
        stored.append(f)
    problem = vision.image_problem(f.content_type, f.bytes)
    if problem is not None:
        raise InvalidRequest(
            f"“{f.filename}” can't be sent as an image: {problem}.", code="invalid_image_file"
        )
    image = {"file_id": f.id, **({"detail": spec["detail"]} if spec.get("detail") else {})}
    return {"type": "image_file", "image_file": image}


def post_message(thread: Thread, **fields: Any) -> Message:
    check_message(thread.owner, fields)
    with transaction.atomic():
        lock_idle(thread)
        return insert_message(thread, fields)


def set_metadata(obj: Message | Run, metadata: dict[str, str] | None) -> Message | Run:
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


# --- threads ------------------------------------------------------------------------------------
def create_thread(
    user: Any,
    *,
    messages: Iterable[Mapping[str, Any]] = (),
    metadata: dict[str, str] | None = None,
    tool_resources: Mapping[str, Any] | None = None,
    is_chat: bool = False,
    param: str = "",
) -> Thread:
    prefix = f"{param}." if param else ""
    messages = list(messages)
    for i, m in enumerate(messages):
        check_message(user, m, f"{prefix}messages[{i}]")
    # Atomic: tool_resources may create inline vector stores, which a failed create must not leave behind.
    with transaction.atomic():
        thread = Thread.objects.create(
            owner=user,
            metadata=metadata or {},
            tool_resources=tools.check_tool_resources(user, tool_resources, f"{prefix}tool_resources"),
            is_chat=is_chat,
        )
        for m in messages:
            insert_message(thread, m)
    return thread


def update_thread(thread: Thread, fields: Mapping[str, Any]) -> Thread:
    update = []
    if "metadata" in fields:
        thread.metadata = fields["metadata"]
        update.append("metadata")
    if "tool_resources" in fields:
        thread.tool_resources = tools.check_tool_resources(thread.owner, fields["tool_resources"])
        update.append("tool_resources")
    if update:
        thread.save(update_fields=update)
    return thread


def delete_thread(thread: Thread) -> None:
    with transaction.atomic():
        # The executor is writing into a busy thread: deleting it would crash the run mid-write.
        lock_idle(thread)
        thread.delete()
