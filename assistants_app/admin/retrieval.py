"""Retrieval files uploaded on the assistant form: stored as Files and attached, in_progress, to the
assistant's vector store. Indexing happens later, off the request path (the executor's ingestion loop).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from assistants_app.models import Assistant, VectorStore, VectorStoreFile


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


def add_files(store: VectorStore, uploads: Iterable[UploadedFile]) -> list[VectorStoreFile]:
    """Store each upload as a File and attach it to `store`, waiting for ingestion (in_progress)."""
    from assistants_app.services_api import store_file

    rows = []
    with transaction.atomic():
        for upload in uploads:
            # Owned by the store's owner even when another staff member uploads: chunks carry the
            # store's owner, and ingestion refuses a file whose owner differs from its store's.
            file = store_file(store.owner, upload, purpose="assistants", filename=upload.name or "upload")
            rows.append(
                VectorStoreFile.objects.create(
                    vector_store=store, file=file, status=VectorStoreFile.Status.IN_PROGRESS
                )
            )
    return rows


def store_files(assistant: Assistant) -> list[VectorStoreFile]:
    return list(
        VectorStoreFile.objects.filter(vector_store_id__in=assistant_store_ids(assistant))
        .select_related("file")
        .order_by("-id")[:500]
    )


def mark_for_reindex(queryset: Any) -> int:
    """Queue files for ingestion again. Old chunks stay searchable until the new ones replace them
    (ingest.replace_chunks swaps them in one transaction); a failure deletes them."""
    return queryset.update(
        status=VectorStoreFile.Status.IN_PROGRESS,
        claimed_by="",
        claim_expires_at=None,
        attempts=0,
        last_error=None,
    )
