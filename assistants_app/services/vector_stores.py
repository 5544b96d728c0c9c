"""Use cases of the /v1/vector_stores API: stores and search (their files and batches:
vector_store_files.py).

Inputs arrive shape-checked (api/request_specs.py); these functions check meaning (ownership, expiry,
chunking limits) and change state. Requests never ingest: an attached file is a VectorStoreFile row
in_progress, which the run executor's ingestion loop claims (tools/file_search/ingest.py). Counts,
statuses and usage are always computed from the rows, never kept in counters that could drift.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from assistants_app.errors import InvalidRequest
from assistants_app.models import Chunk, File, Thread, VectorStore, VectorStoreFile
from assistants_app.models.files import VECTOR_STORE_FILE_STATUSES, store_expiry
from assistants_app.tools.file_search.chunk import (
    ChunkingStrategyError,
    chunking_strategy_to_api,
    parse_chunking_strategy,
)
from assistants_app.tools.file_search.search import SearchError
from assistants_app.tools.file_search.search import search as run_search

from . import lookups, query_rewrite

Status = VectorStoreFile.Status
STATUSES = VECTOR_STORE_FILE_STATUSES
AUTO = chunking_strategy_to_api(parse_chunking_strategy(None))


# --- stats -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stats:
    counts: dict[str, int]
    usage_bytes: int


def count_of(status: str, prefix: str = "") -> Count:
    return Count(f"{prefix}id", filter=Q(**{f"{prefix}status": status}))


def with_stats(qs: QuerySet[VectorStore]) -> QuerySet[VectorStore]:
    """One query for a page of stores and their file counts and usage (a single join on vs_files)."""
    return qs.annotate(
        **{f"n_{s}": count_of(s, "vs_files__") for s in STATUSES},
        usage=Coalesce(Sum("vs_files__usage_bytes"), 0),
    )


def stats_of(store: VectorStore) -> Stats:
    counts = {s: int(getattr(store, f"n_{s}", 0) or 0) for s in STATUSES}
    return Stats(counts, int(getattr(store, "usage", 0) or 0))


def store_status(store: VectorStore, stats: Stats) -> str:
    if store.is_expired():
        return "expired"
    return "in_progress" if stats.counts["in_progress"] else "completed"


# --- lookups: another owner's object is indistinguishable from a missing one --------------------------
def stores_of(user: Any) -> QuerySet[VectorStore]:
    return with_stats(VectorStore.objects.filter(owner=user))


def get_store(
    user: Any, vector_store_id: str, *, param: str | None = None, stats: bool = True
) -> VectorStore:
    # Without stats for the sub-resources (files, batches, search): their polls need no file counts.
    qs = stores_of(user) if stats else VectorStore.objects.filter(owner=user)
    return lookups.one(qs.filter(id=vector_store_id), "vector store", vector_store_id, param=param)


def stored_strategy(raw: Mapping[str, Any] | None, param: str) -> dict[str, Any]:
    """The stored (and reported) form of a request's chunking_strategy: auto becomes its static values."""
    try:
        params = parse_chunking_strategy(raw)
    except ChunkingStrategyError as exc:
        suffix = exc.param.removeprefix("chunking_strategy")
        raise InvalidRequest(exc.message, param=f"{param}{suffix}") from None
    return chunking_strategy_to_api(params)


def refuse_expired(store: VectorStore) -> None:
    if store.is_expired():
        raise InvalidRequest(
            f"Vector store {store.id} has expired; create a new one.", code="vector_store_expired"
        )


# --- stores ------------------------------------------------------------------------------------------


def create_store(user: Any, fields: Mapping[str, Any], *, param: str = "") -> VectorStore:
    prefix = f"{param}." if param else ""
    file_ids = list(dict.fromkeys(fields.get("file_ids") or []))
    lookups.check_file_ids(user, fields.get("file_ids") or [], f"{prefix}file_ids")
    strategy = stored_strategy(fields.get("chunking_strategy"), f"{prefix}chunking_strategy")
    now = timezone.now()
    expires_after = fields.get("expires_after")
    with transaction.atomic():
        store = VectorStore.objects.create(
            owner=user,
            name=fields.get("name") or "",
            description=fields.get("description") or "",
            metadata=fields.get("metadata") or {},
            expires_after=dict(expires_after) if expires_after else None,
            expires_at=store_expiry(expires_after, now),
            last_active_at=now,
        )
        VectorStoreFile.objects.bulk_create(
            VectorStoreFile(vector_store=store, file_id=fid, chunking_strategy=strategy) for fid in file_ids
        )
    return get_store(user, store.id)


def update_store(store: VectorStore, fields: Mapping[str, Any], *, clear_expiry: bool = False) -> VectorStore:
    changed: dict[str, Any] = {}
    if "name" in fields:
        changed["name"] = fields["name"]
    if "metadata" in fields:
        changed["metadata"] = fields["metadata"]
    if "expires_after" in fields or clear_expiry:
        # An expired store stays expired: its files may already be gone from the client's view.
        refuse_expired(store)
        expires_after = None if clear_expiry else dict(fields["expires_after"])
        anchor = store.last_active_at or store.created_at
        changed["expires_after"] = expires_after
        changed["expires_at"] = store_expiry(expires_after, anchor)
    if changed:
        VectorStore.objects.filter(id=store.id).update(**changed)
    return get_store(store.owner, store.id)


def delete_store(store: VectorStore) -> None:
    with transaction.atomic():
        # One set-based DELETE for the chunks (the FTS triggers follow), rather than the ORM
        # collecting every chunk row for the cascade.
        Chunk.objects.filter(vector_store=store).delete()
        VectorStore.objects.filter(id=store.id).delete()


def touch(store_ids: Iterable[str]) -> None:
    VectorStore.objects.touch(store_ids)


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


# --- search ------------------------------------------------------------------------------------------
def search(store: VectorStore, fields: Mapping[str, Any]) -> dict[str, Any]:
    refuse_expired(store)
    query = fields["query"]
    queries = [query] if isinstance(query, str) else list(query)
    if fields.get("rewrite_query"):
        queries = query_rewrite.rewrite_queries(queries)
    ranking = fields.get("ranking_options") or {}
    try:
        results = run_search(
            store.owner_id,
            [store.id],
            queries,
            max_num_results=fields.get("max_num_results", 10),
            score_threshold=float(ranking.get("score_threshold", 0.0)),
            filters=fields.get("filters"),
        )
    except SearchError as exc:
        raise InvalidRequest(exc.message, param=exc.param) from None
    touch([store.id])
    return {
        "object": "vector_store.search_results.page",
        "search_query": queries,
        "data": [
            {
                "file_id": r.file_id,
                "filename": r.filename,
                "score": r.score,
                "attributes": r.attributes,
                "content": [{"type": "text", "text": r.text}],
            }
            for r in results
        ],
        "has_more": False,
        "next_page": None,
    }


# --- tool_resources.file_search of assistants and threads --------------------------------------------
MAX_STORES_PER_OWNER_OBJECT = 1


def file_search_resources(user: Any, fs: Mapping[str, Any], param: str) -> dict[str, Any]:
    """Check `vector_store_ids` (the caller's, unexpired) and create the inline `vector_stores`.

    Call inside the transaction that saves the assistant or thread, so a rejected request leaves
    no store behind. At most one store in all, as OpenAI allows.
    """
    ids = list(fs.get("vector_store_ids") or [])
    inline = list(fs.get("vector_stores") or [])
    if len(ids) + len(inline) > MAX_STORES_PER_OWNER_OBJECT:
        raise InvalidRequest(
            f"At most {MAX_STORES_PER_OWNER_OBJECT} vector store can be attached (vector_store_ids and "
            "vector_stores together).",
            param=f"{param}.vector_stores" if inline else f"{param}.vector_store_ids",
        )
    found = {s.id: s for s in VectorStore.objects.filter(owner=user, id__in=ids)}
    for i, vid in enumerate(ids):
        if vid not in found:
            raise InvalidRequest(
                f"No vector store found with id '{vid}'.", param=f"{param}.vector_store_ids[{i}]"
            )
        if found[vid].is_expired():
            raise InvalidRequest(
                f"Vector store {vid} has expired.",
                param=f"{param}.vector_store_ids[{i}]",
                code="vector_store_expired",
            )
    for i, spec in enumerate(inline):
        ids.append(create_store(user, spec, param=f"{param}.vector_stores[{i}]").id)
    return {"vector_store_ids": ids}
