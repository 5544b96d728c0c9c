"""Use cases of the /v1/vector_stores API: stores, their files, file batches and search.

Inputs arrive shape-checked (api/request_specs.py); these functions check meaning (ownership, expiry,
chunking limits) and change state. Requests never ingest: an attached file is a VectorStoreFile row
in_progress, which the run executor's ingestion loop claims (tools/file_search/ingest.py). Counts,
statuses and usage are always computed from the rows, never kept in counters that could drift.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import Count, Q, QuerySet, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from assistants_app.errors import InvalidRequest
from assistants_app.models import Chunk, File, Thread, VectorStore, VectorStoreFile, VectorStoreFileBatch
from assistants_app.models.files import VECTOR_STORE_FILE_STATUSES, store_expiry
from assistants_app.tools.file_search.chunk import (
    ChunkingStrategyError,
    chunking_strategy_to_api,
    parse_chunking_strategy,
)
from assistants_app.tools.file_search.search import SearchError
from assistants_app.tools.file_search.search import search as run_search

from . import lookups

Status = VectorStoreFile.Status
STATUSES = VECTOR_STORE_FILE_STATUSES
AUTO = chunking_strategy_to_api(parse_chunking_strategy(None))


# --- stats -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Stats:
    counts: dict[str, int]
    usage_bytes: int


def _count(status: str, prefix: str = "") -> Count:
    return Count(f"{prefix}id", filter=Q(**{f"{prefix}status": status}))


def with_stats(qs: QuerySet[VectorStore]) -> QuerySet[VectorStore]:
    """One query for a page of stores and their file counts and usage (a single join on vs_files)."""
    return qs.annotate(
        **{f"n_{s}": _count(s, "vs_files__") for s in STATUSES},
        usage=Coalesce(Sum("vs_files__usage_bytes"), 0),
    )


def stats_of(store: VectorStore) -> Stats:
    counts = {s: int(getattr(store, f"n_{s}", 0) or 0) for s in STATUSES}
    return Stats(counts, int(getattr(store, "usage", 0) or 0))


def batch_stats(batch: VectorStoreFileBatch) -> dict[str, int]:
    agg = VectorStoreFile.objects.filter(batch=batch).aggregate(**{s: _count(s) for s in STATUSES})
    return {k: int(v or 0) for k, v in agg.items()}


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


def get_vs_file(store: VectorStore, file_id: str) -> VectorStoreFile:
    rows = VectorStoreFile.objects.filter(vector_store=store, file_id=file_id)
    return lookups.one(rows, "vector store file", file_id)


def get_batch(store: VectorStore, batch_id: str) -> VectorStoreFileBatch:
    rows = VectorStoreFileBatch.objects.filter(vector_store=store, id=batch_id)
    return lookups.one(rows, "vector store file batch", batch_id)


def _strategy(raw: Mapping[str, Any] | None, param: str) -> dict[str, Any]:
    """The stored (and reported) form of a request's chunking_strategy: auto becomes its static values."""
    try:
        params = parse_chunking_strategy(raw)
    except ChunkingStrategyError as exc:
        suffix = exc.param.removeprefix("chunking_strategy")
        raise InvalidRequest(exc.message, param=f"{param}{suffix}") from None
    return chunking_strategy_to_api(params)


def _refuse_expired(store: VectorStore) -> None:
    if store.is_expired():
        raise InvalidRequest(
            f"Vector store {store.id} has expired; create a new one.", code="vector_store_expired"
        )


# --- stores ------------------------------------------------------------------------------------------


def create_store(user: Any, fields: Mapping[str, Any], *, param: str = "") -> VectorStore:
    prefix = f"{param}." if param else ""
    file_ids = list(dict.fromkeys(fields.get("file_ids") or []))
    lookups.check_file_ids(user, fields.get("file_ids") or [], f"{prefix}file_ids")
    strategy = _strategy(fields.get("chunking_strategy"), f"{prefix}chunking_strategy")
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
        _refuse_expired(store)
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


# --- files -------------------------------------------------------------------------------------------
def _attach(
    store: VectorStore,
    file_id: str,
    *,
    attributes: dict[str, Any] | None,
    strategy: dict[str, Any],
    batch: VectorStoreFileBatch | None = None,
) -> VectorStoreFile:
    """Attach a file, or return the existing attachment (idempotent, see _reattach)."""
    row, created = VectorStoreFile.objects.get_or_create(
        vector_store=store,
        file_id=file_id,
        defaults={"chunking_strategy": strategy, "attributes": attributes or {}, "batch": batch},
    )
    return row if created else _reattach(row, attributes=attributes, strategy=strategy, batch=batch)


# What queues an attached file for ingestion again (attaching it anew, the admin's re-index).
REQUEUE: dict[str, Any] = {
    "status": Status.IN_PROGRESS,
    "last_error": None,
    "attempts": 0,
    "claimed_by": "",
    "claim_expires_at": None,
}


def _needs_ingestion(row: VectorStoreFile, strategy: dict[str, Any]) -> bool:
    # Rows attached without a strategy (the admin's uploads) were chunked with auto.
    return (row.chunking_strategy or AUTO) != strategy or row.status in (Status.FAILED, Status.CANCELLED)


def _reattach(
    row: VectorStoreFile,
    *,
    attributes: dict[str, Any] | None,
    strategy: dict[str, Any],
    batch: VectorStoreFileBatch | None,
) -> VectorStoreFile:
    """Attaching an attached file again changes nothing, except: a different chunking_strategy, or a
    file that failed or was cancelled, queues it for ingestion again; given attributes replace the old
    ones; a batch takes it over (its counts then include it)."""
    update: dict[str, Any] = {}
    if attributes is not None and attributes != row.attributes:
        update["attributes"] = attributes
    if batch is not None:
        update["batch"] = batch
    if _needs_ingestion(row, strategy):
        update.update(chunking_strategy=strategy, **REQUEUE)
    if update:
        VectorStoreFile.objects.filter(pk=row.pk).update(**update)
        row.refresh_from_db()
    return row


def _attach_many(
    store: VectorStore,
    items: Sequence[tuple[str, dict[str, Any] | None, dict[str, Any]]],
    batch: VectorStoreFileBatch,
) -> None:
    """_attach for a batch (up to 2,000 files): one read, one bulk insert, updates only where needed."""
    existing = {
        r.file_id: r
        for r in VectorStoreFile.objects.filter(vector_store=store, file_id__in=[i[0] for i in items])
    }
    fresh = [
        VectorStoreFile(
            vector_store=store, file_id=fid, attributes=attrs or {}, chunking_strategy=strategy, batch=batch
        )
        for fid, attrs, strategy in items
        if fid not in existing
    ]
    # A concurrent request may attach one of them first: its row stands, the batch then adopts it.
    VectorStoreFile.objects.bulk_create(fresh, batch_size=500, ignore_conflicts=True)
    VectorStoreFile.objects.filter(
        vector_store=store, file_id__in=[r.file_id for r in fresh], batch__isnull=True
    ).update(batch=batch)
    # The existing rows, as _reattach would treat them, but in set-based UPDATEs grouped by value.
    requeue: dict[str, list[int]] = {}
    relabel: dict[str, list[int]] = {}
    for fid, attrs, strategy in items:
        row = existing.get(fid)
        if row is None:
            continue
        if _needs_ingestion(row, strategy):
            requeue.setdefault(json.dumps(strategy, sort_keys=True), []).append(row.pk)
        if attrs is not None and attrs != row.attributes:
            relabel.setdefault(json.dumps(attrs, sort_keys=True), []).append(row.pk)
    rows = VectorStoreFile.objects.filter(pk__in=[r.pk for r in existing.values()])
    rows.update(batch=batch)
    for strategy_json, pks in requeue.items():
        VectorStoreFile.objects.filter(pk__in=pks).update(
            chunking_strategy=json.loads(strategy_json), **REQUEUE
        )
    for attrs_json, pks in relabel.items():
        VectorStoreFile.objects.filter(pk__in=pks).update(attributes=json.loads(attrs_json))


def requeue(rows: QuerySet[VectorStoreFile]) -> int:
    """Queue files for ingestion again. Old chunks stay searchable until the new ones replace them
    (ingest.replace_chunks swaps them in one transaction); a failure deletes them."""
    return rows.update(**REQUEUE)


def add_file(user: Any, store: VectorStore, fields: Mapping[str, Any]) -> VectorStoreFile:
    _refuse_expired(store)
    lookups.check_file_id(user, fields["file_id"], "file_id")
    strategy = _strategy(fields.get("chunking_strategy"), "chunking_strategy")
    with transaction.atomic():
        row = _attach(store, fields["file_id"], attributes=fields.get("attributes"), strategy=strategy)
    touch([store.id])
    return row


def files_of(
    store: VectorStore, status: str | None = None, batch: VectorStoreFileBatch | None = None
) -> QuerySet[VectorStoreFile]:
    qs = VectorStoreFile.objects.filter(vector_store=store)
    if batch is not None:
        qs = qs.filter(batch=batch)
    if status:
        qs = qs.filter(status=status)
    return qs


def set_attributes(vs_file: VectorStoreFile, attributes: dict[str, Any] | None) -> VectorStoreFile:
    vs_file.attributes = attributes or {}
    VectorStoreFile.objects.filter(pk=vs_file.pk).update(attributes=vs_file.attributes)
    return vs_file


def remove_file(vs_file: VectorStoreFile) -> None:
    """Detach a file from its store: its chunks go, the File itself stays."""
    with transaction.atomic():
        Chunk.objects.filter(vs_file_id=vs_file.pk).delete()
        VectorStoreFile.objects.filter(pk=vs_file.pk).delete()


def file_text(vs_file: VectorStoreFile) -> list[str]:
    """The file's extracted text, stitched back from its chunks.

    Chunks are exact, overlapping slices of the extracted text (chunk.py), so the overlap is cut
    using their offsets. Where no chunk covers a stretch (whitespace-only windows are not stored),
    the text is split into separate parts.
    """
    parts: list[str] = []
    current: list[str] = []
    end = -1
    rows = (
        Chunk.objects.filter(vs_file_id=vs_file.pk)
        .order_by("ordinal")
        .values_list("start_offset", "end_offset", "text")
    )
    for start, stop, text in rows.iterator(chunk_size=500):
        if current and start > end:
            parts.append("".join(current))
            current = []
        if not current:
            current.append(text)
        elif stop > end:
            current.append(text[end - start :])
        end = max(end, stop)
    if current:
        parts.append("".join(current))
    return parts


# --- batches -----------------------------------------------------------------------------------------
def create_batch(user: Any, store: VectorStore, fields: Mapping[str, Any]) -> VectorStoreFileBatch:
    _refuse_expired(store)
    items = _batch_items(user, fields)
    with transaction.atomic():
        batch = VectorStoreFileBatch.objects.create(vector_store=store)
        _attach_many(store, items, batch)
        if not files_of(store, Status.IN_PROGRESS, batch).exists():
            # Every file was already ingested: nothing will complete the batch later.
            VectorStoreFileBatch.objects.filter(pk=batch.pk).update(status="completed")
            batch.status = "completed"
    touch([store.id])
    return batch


def _batch_items(
    user: Any, fields: Mapping[str, Any]
) -> list[tuple[str, dict[str, Any] | None, dict[str, Any]]]:
    file_ids, files = fields.get("file_ids"), fields.get("files")
    if file_ids is not None and files is not None:
        raise InvalidRequest("Give either 'file_ids' or 'files', not both.", param="files")
    if files is not None:
        # Per-file settings replace the batch-wide ones; OpenAI ignores the latter, we say so.
        for name in ("attributes", "chunking_strategy"):
            if fields.get(name) is not None:
                raise InvalidRequest(
                    f"'{name}' applies to 'file_ids' only; with 'files', set it on each file.", param=name
                )
        lookups.check_file_ids(user, [f["file_id"] for f in files], "files", ".file_id")
        out: dict[str, tuple[str, dict[str, Any] | None, dict[str, Any]]] = {}
        for i, f in enumerate(files):
            strategy = _strategy(f.get("chunking_strategy"), f"files[{i}].chunking_strategy")
            out[f["file_id"]] = (f["file_id"], f.get("attributes"), strategy)
        return list(out.values())
    if not file_ids:
        raise InvalidRequest(
            "Missing required parameter: 'file_ids' (or 'files').",
            param="file_ids",
            code="missing_required_parameter",
        )
    lookups.check_file_ids(user, file_ids, "file_ids")
    strategy = _strategy(fields.get("chunking_strategy"), "chunking_strategy")
    return [(fid, fields.get("attributes"), strategy) for fid in dict.fromkeys(file_ids)]


def batch_status(batch: VectorStoreFileBatch, counts: Mapping[str, int]) -> str:
    if batch.status == "cancelled":
        return "cancelled"
    return "in_progress" if counts.get(Status.IN_PROGRESS) else "completed"


def cancel_batch(batch: VectorStoreFileBatch) -> VectorStoreFileBatch:
    """Files of the batch still waiting or being ingested end cancelled; finished ones stay.

    A worker ingesting one of them notices at its next conditional write (ingest._finish) and drops
    its work. A batch that already finished is returned unchanged (a cancel racing completion).
    """
    with transaction.atomic():
        pending = files_of(batch.vector_store, Status.IN_PROGRESS, batch)
        pks = list(pending.values_list("pk", flat=True))
        if pks:
            VectorStoreFile.objects.filter(pk__in=pks, status=Status.IN_PROGRESS).update(
                status=Status.CANCELLED, claimed_by="", claim_expires_at=None
            )
            # A re-ingested file keeps its old chunks until replaced: cancelled ones must not stay searchable.
            Chunk.objects.filter(vs_file_id__in=pks).delete()
        if pks or batch.status == "in_progress":
            VectorStoreFileBatch.objects.filter(pk=batch.pk).update(status="cancelled")
            batch.status = "cancelled"
    return batch


# --- search ------------------------------------------------------------------------------------------
def search(store: VectorStore, fields: Mapping[str, Any]) -> dict[str, Any]:
    _refuse_expired(store)
    if fields.get("rewrite_query"):
        raise InvalidRequest(
            "rewrite_query is not supported by this server: the query is searched as given.",
            param="rewrite_query",
            code="unsupported_parameter",
        )
    query = fields["query"]
    queries = [query] if isinstance(query, str) else list(query)
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
