"""Use cases of a vector store's files and file batches (/v1/vector_stores/{id}/files and
/file_batches).

Requests never ingest: an attached file is a VectorStoreFile row in_progress, which the run
executor's ingestion loop claims (tools/file_search/ingest.py). Counts and statuses are computed
from the rows, never kept in counters that could drift.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from django.db import transaction
from django.db.models import QuerySet

from assistants_app.errors import InvalidRequest
from assistants_app.models import Chunk, VectorStore, VectorStoreFile, VectorStoreFileBatch

from . import lookups, vector_stores

Status = VectorStoreFile.Status


def get_vs_file(store: VectorStore, file_id: str) -> VectorStoreFile:
    rows = VectorStoreFile.objects.filter(vector_store=store, file_id=file_id)
    return lookups.one(rows, "vector store file", file_id)


def get_batch(store: VectorStore, batch_id: str) -> VectorStoreFileBatch:
    rows = VectorStoreFileBatch.objects.filter(vector_store=store, id=batch_id)
    return lookups.one(rows, "vector store file batch", batch_id)


def batch_stats(batch: VectorStoreFileBatch) -> dict[str, int]:
    agg = VectorStoreFile.objects.filter(batch=batch).aggregate(
        **{s: vector_stores.count_of(s) for s in vector_stores.STATUSES}
    )
    return {k: int(v or 0) for k, v in agg.items()}


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
    return (row.chunking_strategy or vector_stores.AUTO) != strategy or row.status in (
        Status.FAILED,
        Status.CANCELLED,
    )


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
    vector_stores.refuse_expired(store)
    lookups.check_file_id(user, fields["file_id"], "file_id")
    strategy = vector_stores.stored_strategy(fields.get("chunking_strategy"), "chunking_strategy")
    with transaction.atomic():
        row = _attach(store, fields["file_id"], attributes=fields.get("attributes"), strategy=strategy)
    vector_stores.touch([store.id])
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
    vector_stores.refuse_expired(store)
    items = _batch_items(user, fields)
    with transaction.atomic():
        batch = VectorStoreFileBatch.objects.create(vector_store=store)
        _attach_many(store, items, batch)
        if not files_of(store, Status.IN_PROGRESS, batch).exists():
            # Every file was already ingested: nothing will complete the batch later.
            VectorStoreFileBatch.objects.filter(pk=batch.pk).update(status="completed")
            batch.status = "completed"
    vector_stores.touch([store.id])
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
            strategy = vector_stores.stored_strategy(
                f.get("chunking_strategy"), f"files[{i}].chunking_strategy"
            )
            out[f["file_id"]] = (f["file_id"], f.get("attributes"), strategy)
        return list(out.values())
    if not file_ids:
        raise InvalidRequest(
            "Missing required parameter: 'file_ids' (or 'files').",
            param="file_ids",
            code="missing_required_parameter",
        )
    lookups.check_file_ids(user, file_ids, "file_ids")
    strategy = vector_stores.stored_strategy(fields.get("chunking_strategy"), "chunking_strategy")
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
