"""Ingestion of vector-store files: extract -> chunk -> (embed) -> index, under a lease.

Several worker processes may call `claim_and_ingest_pending` at once. A file is claimed by a
conditional UPDATE whose row count says who won; the claim is a lease (`claim_expires_at`) that
the worker extends between steps, so a killed worker's file is picked up again once the lease
expires, and the final write is again conditional on still holding the claim: a worker whose
lease was taken over, or whose file was cancelled or deleted meanwhile, writes nothing.
Synchronous on purpose: the run executor calls it from a thread.
"""

from __future__ import annotations

import logging
import os
import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from assistants_app.models import Chunk, File, VectorStoreFile, VectorStoreFileBatch

from .chunk import ChunkingStrategyError, chunk_text, parse_chunking_strategy
from .embeddings import embed_texts, embeddings_configured
from .extract import ExtractionError, extract_text, max_file_bytes
from .index import replace_chunks, usage_bytes

log = logging.getLogger(__name__)
Status = VectorStoreFile.Status


class _ClaimLost(Exception):
    """The lease expired and was taken, or the file was cancelled or deleted: drop the work."""


def lease_seconds() -> float:
    return float(settings.FILE_SEARCH_LEASE_SECONDS)


def max_attempts() -> int:
    return int(settings.FILE_SEARCH_MAX_ATTEMPTS)


def _unclaimed(now: datetime) -> Q:
    """Pending files that no live claim holds."""
    return Q(status=Status.IN_PROGRESS) & (Q(claim_expires_at__isnull=True) | Q(claim_expires_at__lt=now))


def _claimable(now: datetime) -> Q:
    return _unclaimed(now) & Q(attempts__lt=max_attempts())


def _claim(vs_file_id: int, worker_id: str) -> bool:
    now = timezone.now()
    won = VectorStoreFile.objects.filter(_claimable(now), pk=vs_file_id).update(
        claimed_by=worker_id,
        claim_expires_at=now + timedelta(seconds=lease_seconds()),
        attempts=F("attempts") + 1,
    )
    return won == 1


def _extend_lease(vs_file_id: int, worker_id: str) -> None:
    still_ours = VectorStoreFile.objects.filter(
        pk=vs_file_id, claimed_by=worker_id, status=Status.IN_PROGRESS
    ).update(claim_expires_at=timezone.now() + timedelta(seconds=lease_seconds()))
    if still_ours != 1:
        raise _ClaimLost


def _fail_exhausted(ids: list[int]) -> int:
    """Files whose every attempt died (e.g. a worker killed by a pathological file) end as failed."""
    if not ids:
        return 0
    now = timezone.now()
    return VectorStoreFile.objects.filter(_unclaimed(now), pk__in=ids, attempts__gte=max_attempts()).update(
        status=Status.FAILED,
        claimed_by="",
        claim_expires_at=None,
        last_error={
            "code": "server_error",
            "message": f"Ingestion did not finish after {max_attempts()} attempts.",
        },
    )


def claim_and_ingest_pending(worker_id: str, limit: int = 4) -> int:
    """Claim and ingest up to `limit` pending files; returns how many this worker processed."""
    now = timezone.now()
    # One read finds both the claimable and the exhausted files: every idle worker asks once per
    # poll, and an UPDATE would take SQLite's write lock even when it matches nothing.
    unclaimed = list(
        VectorStoreFile.objects.filter(_unclaimed(now))
        .order_by("id")
        .values_list("id", "attempts")[: limit * 4]
    )
    most = max_attempts()
    _fail_exhausted([pk for pk, attempts in unclaimed if attempts >= most])
    candidates = [pk for pk, attempts in unclaimed if attempts < most]
    done = 0
    for vs_file_id in candidates:
        if done >= limit:
            break
        # One at a time: claiming a whole batch up front would let the later leases run out
        # while the earlier files are still being ingested.
        if _claim(vs_file_id, worker_id):
            _ingest_claimed(vs_file_id, worker_id)
            done += 1
    return done


def ingest_vector_store_file(vs_file_id: int, *, force: bool = False) -> str | None:
    """Ingest one file now, in this thread; returns its final status (None if it was deleted).

    A completed file is left alone unless `force`, which re-extracts it and replaces its chunks.
    If another worker holds a live claim, nothing is done and the current status is returned.
    """
    if force:
        VectorStoreFile.objects.filter(pk=vs_file_id, status__in=[Status.COMPLETED, Status.FAILED]).update(
            status=Status.IN_PROGRESS, attempts=0, claimed_by="", claim_expires_at=None, last_error=None
        )
    worker_id = f"direct-{os.getpid()}-{uuid.uuid4().hex[:12]}"
    if _claim(vs_file_id, worker_id):
        _ingest_claimed(vs_file_id, worker_id)
    return VectorStoreFile.objects.filter(pk=vs_file_id).values_list("status", flat=True).first()


def _read_file_bytes(file: File) -> bytes:
    limit = max_file_bytes()
    if file.bytes and file.bytes > limit:
        raise ExtractionError(
            "invalid_file", f"The file is too large ({file.bytes} bytes; the limit is {limit})."
        )
    try:
        with file.data.open("rb") as fh:
            data: bytes = fh.read(limit + 1)
    except (FileNotFoundError, ValueError) as exc:
        raise ExtractionError("invalid_file", "The file's stored content is missing.") from exc
    if len(data) > limit:
        raise ExtractionError("invalid_file", f"The file is too large (over {limit} bytes).")
    return data


def _ingest_claimed(vs_file_id: int, worker_id: str) -> None:
    try:
        vs_file = VectorStoreFile.objects.select_related("file", "vector_store").get(pk=vs_file_id)
    except VectorStoreFile.DoesNotExist:
        return
    try:
        if vs_file.file.owner_id != vs_file.vector_store.owner_id:
            # Chunks carry the store's owner: another user's file must never be indexed under it.
            raise ExtractionError("invalid_file", "The file does not belong to the vector store's owner.")
        params = parse_chunking_strategy(vs_file.chunking_strategy or None)
        data = _read_file_bytes(vs_file.file)
        extracted = extract_text(data, vs_file.file.filename)
        del data
        chunks = chunk_text(extracted.text, params)
        if not chunks:
            raise ExtractionError("invalid_file", "No text could be extracted from the file.")
        embeddings = None
        if embeddings_configured():
            # Renew before the slowest step; also notices a cancellation before paying for it.
            _extend_lease(vs_file_id, worker_id)
            # Renewed after every request: a large file may take longer than one lease to embed.
            embeddings = embed_texts(
                [c.text for c in chunks], on_batch=lambda: _extend_lease(vs_file_id, worker_id)
            )
        usage = usage_bytes(chunks, embeddings)
        with transaction.atomic():
            _finish(vs_file, worker_id, status=Status.COMPLETED, chunk_count=len(chunks), usage=usage)
            replace_chunks(vs_file, chunks, embeddings)
    except _ClaimLost:
        log.info(
            "file search: dropped ingestion of vs_file %s (claim lost, cancelled or deleted)", vs_file_id
        )
        return
    except ExtractionError as exc:
        _fail(vs_file, worker_id, exc.as_last_error())
    except ChunkingStrategyError as exc:
        _fail(
            vs_file,
            worker_id,
            {"code": "server_error", "message": f"Invalid chunking_strategy: {exc.message}"},
        )
    except Exception as exc:  # transient (DB, embeddings endpoint) or a bug: retry, then fail
        log.exception("file search: ingestion of vs_file %s failed", vs_file_id)
        _retry_or_fail(vs_file, worker_id, exc)
    _maybe_complete_batch(vs_file.batch_id)


def _finish(
    vs_file: VectorStoreFile,
    worker_id: str,
    *,
    status: str,
    chunk_count: int,
    usage: int = 0,
    last_error: dict[str, str] | None = None,
) -> None:
    # Conditional on the claim: on PostgreSQL this also locks the row until the chunks commit.
    won = VectorStoreFile.objects.filter(
        pk=vs_file.pk, claimed_by=worker_id, status=Status.IN_PROGRESS
    ).update(
        status=status,
        claimed_by="",
        claim_expires_at=None,
        chunk_count=chunk_count,
        last_error=last_error,
        usage_bytes=usage,
    )
    if won != 1:
        raise _ClaimLost


def _fail(vs_file: VectorStoreFile, worker_id: str, last_error: dict[str, str]) -> None:
    try:
        with transaction.atomic():
            _finish(vs_file, worker_id, status=Status.FAILED, chunk_count=0, last_error=last_error)
            # A forced re-ingest that now fails must not leave stale chunks searchable.
            Chunk.objects.filter(vs_file_id=vs_file.pk).delete()
    except _ClaimLost:
        pass


def _retry_or_fail(vs_file: VectorStoreFile, worker_id: str, exc: Exception) -> None:
    attempts = VectorStoreFile.objects.filter(pk=vs_file.pk).values_list("attempts", flat=True).first() or 0
    if attempts >= max_attempts():
        _fail(
            vs_file, worker_id, {"code": "server_error", "message": f"Ingestion failed: {type(exc).__name__}"}
        )
        return
    # Give the claim back with a back-off so another attempt (any worker) happens later.
    backoff = timedelta(seconds=min(300.0, 5.0 * 2**attempts))
    VectorStoreFile.objects.filter(pk=vs_file.pk, claimed_by=worker_id, status=Status.IN_PROGRESS).update(
        claimed_by="", claim_expires_at=timezone.now() + backoff
    )


def _maybe_complete_batch(batch_id: str | None) -> None:
    if batch_id and not VectorStoreFile.objects.filter(batch_id=batch_id, status=Status.IN_PROGRESS).exists():
        VectorStoreFileBatch.objects.filter(pk=batch_id, status="in_progress").update(status="completed")
