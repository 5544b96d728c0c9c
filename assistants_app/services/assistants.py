"""Assistants: the API's create/update/delete, the admin's save, and the admin's retrieval uploads.

Inputs arrive shape-checked (api/request_specs.py, or the admin's form); these functions check meaning
(tools.py: tool definitions, tool_resources) and save.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction
from django.db.models import Q, QuerySet

from assistants_app.errors import InvalidRequest
from assistants_app.lib import rowlock
from assistants_app.models import Assistant, VectorStore, VectorStoreFile

from . import files, tools

ASSISTANT_COLUMNS = ("model", "name", "description", "instructions", "metadata", "temperature", "top_p")


def reject_unsupported(fields: Mapping[str, Any], *names: str) -> None:
    for name in names:
        if fields.get(name) is not None:
            raise InvalidRequest(
                f"'{name}' is not supported by this server.", param=name, code="unsupported_parameter"
            )


def response_format(value: Any) -> Any:
    """The stored form of a response_format: "auto" is stored as null (and reported as "auto")."""
    return None if value == "auto" else value


def _values(user: Any, fields: Mapping[str, Any]) -> dict[str, Any]:
    reject_unsupported(fields, "reasoning_effort")
    values = {k: fields[k] for k in ASSISTANT_COLUMNS if k in fields}
    if "tools" in fields:
        values["tools"] = tools.check_tools(fields["tools"])
    if "tool_resources" in fields:
        values["tool_resources"] = tools.check_tool_resources(user, fields["tool_resources"])
    if "response_format" in fields:
        values["response_format"] = response_format(fields["response_format"])
    return values


def create_assistant(user: Any, fields: Mapping[str, Any]) -> Assistant:
    # Atomic: tool_resources may create inline vector stores, which a failed create must not leave behind.
    with transaction.atomic():
        return Assistant.objects.create(owner=user, **_values(user, fields))


def update_assistant(assistant: Assistant, fields: Mapping[str, Any]) -> Assistant:
    values = _values(assistant.owner, fields)
    for k, v in values.items():
        setattr(assistant, k, v)
    if values:
        assistant.save(update_fields=list(values))
    return assistant


def chat_visible_assistants() -> QuerySet[Assistant]:
    """The assistants chat users may talk to: the default one, always, and the staff-managed ones
    (no owner) that staff marked "chat_visible". An API user's own assistant is never one of them,
    marked or not. The one definition, for whatever must know which assistants chat users reach
    (the chat's picker and every chat run, the admin's warnings)."""
    return Assistant.objects.filter(Q(is_default=True) | Q(chat_visible=True, owner__isnull=True))


def chat_visibility_problem(assistant: Assistant) -> str | None:
    """Why staff can't offer this assistant in the chat (the admin form says it), or None."""
    if assistant.chat_visible and assistant.owner_id is not None:
        return (
            "This assistant belongs to an API user, so it can't be offered in the chat: only "
            "assistants made in the admin (without an owner) can."
        )
    return None


def delete_assistant(assistant: Assistant) -> None:
    # Runs keep assistant_ref (the FK is SET_NULL), so past runs still say which assistant ran them.
    assistant.delete()


# --- the admin's assistant editor -----------------------------------------------------------------
def save_staff_assistant(
    assistant: Assistant, *, staff: Any, change: bool, uploads: Iterable[UploadedFile[bytes]] = ()
) -> tuple[VectorStore | None, list[VectorStoreFile]]:
    """Save an assistant edited in the admin (its form has checked the tools with tools.py), with its
    new retrieval files. Saving it as the default un-defaults the others.

    Returns the assistant's vector store and the files added to it (None, [] without uploads).
    """
    uploads = list(uploads)
    with transaction.atomic():
        if assistant.is_default:
            # Lock the current default first so that two staff saving defaults at once serialize
            # here rather than one of them failing on the one-default constraint.
            rowlock.lock(Assistant.objects.filter(is_default=True).exclude(pk=assistant.pk))
            Assistant.objects.filter(is_default=True).exclude(pk=assistant.pk).update(is_default=False)
        store = None
        if uploads:
            if change:
                # Lock the row and take the stored tool_resources: two uploads racing must end up
                # in one vector store, and an API edit made meanwhile must not be overwritten.
                current = Assistant.objects.select_for_update().filter(pk=assistant.pk).first()
                if current is not None:
                    assistant.tool_resources = current.tool_resources
            store = ensure_assistant_store(assistant, staff)
        assistant.save()
        rows = add_retrieval_files(store, uploads) if store is not None else []
    return store, rows


def assistant_store_ids(assistant: Assistant) -> list[str]:
    fs = (assistant.tool_resources or {}).get("file_search") or {}
    ids = fs.get("vector_store_ids") or []
    return [i for i in ids if isinstance(i, str)]


def ensure_assistant_store(assistant: Assistant, user: Any) -> VectorStore:
    """The assistant's vector store, created (owned by `user`) if it has none.

    Assistants carry at most one vector store (as in the API), so an existing one is reused: a
    store attached through the API keeps its files and simply gains the uploads. Updates
    `assistant.tool_resources` in memory; the caller saves the assistant.
    """
    for store_id in assistant_store_ids(assistant):
        store = VectorStore.objects.filter(id=store_id).first()
        if store is not None:
            return store
    store = VectorStore.objects.create(
        owner=user,
        name=f"{assistant.name or assistant.id} files"[:256],
        metadata={"assistant_id": assistant.id},
    )
    resources = dict(assistant.tool_resources or {})
    resources["file_search"] = {**(resources.get("file_search") or {}), "vector_store_ids": [store.id]}
    assistant.tool_resources = resources
    return store


def add_retrieval_files(store: VectorStore, uploads: Iterable[UploadedFile[bytes]]) -> list[VectorStoreFile]:
    """Store each upload as a File and attach it to `store`, waiting for ingestion (in_progress).

    Indexing happens later, off the request path (the executor's ingestion loop).
    """
    rows = []
    with transaction.atomic():
        for upload in uploads:
            # Owned by the store's owner even when another staff member uploads: chunks carry the
            # store's owner, and ingestion refuses a file whose owner differs from its store's.
            file = files.store_file(store.owner_id, upload, filename=upload.name or "", purpose="assistants")
            rows.append(
                VectorStoreFile.objects.create(
                    vector_store=store, file=file, status=VectorStoreFile.Status.IN_PROGRESS
                )
            )
    return rows


def retrieval_files(assistant: Assistant) -> list[VectorStoreFile]:
    return list(
        VectorStoreFile.objects.filter(vector_store_id__in=assistant_store_ids(assistant))
        .select_related("file")
        .order_by("-id")[:500]
    )
