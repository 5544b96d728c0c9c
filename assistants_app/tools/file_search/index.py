"""Chunk storage: replacing a file's chunks (with their embeddings), deleting them.

The lexical index over the chunks lives in the database (lexical.py: SQLite FTS5 or PostgreSQL
tsvector + GIN), not in process memory, so it survives restarts and every worker process sees the
same one. On SQLite, triggers on the chunk table keep the FTS5 table in sync, so ORM cascades from
a deleted File, VectorStore or user also reach the index; on PostgreSQL the tsvector is a stored
generated column.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from assistants_app.models import Chunk, VectorStoreFile

from . import lexical
from .chunk import TextChunk
from .embeddings import to_bytes


def usage_bytes(chunks: Sequence[TextChunk], embeddings: np.ndarray | None) -> int:
    """What the file occupies in the store: chunk text (UTF-8) plus float32 vectors."""
    text = sum(len(c.text.encode("utf-8")) for c in chunks)
    return text + (embeddings.shape[0] * embeddings.shape[1] * 4 if embeddings is not None else 0)


def replace_chunks(
    vs_file: VectorStoreFile, chunks: Sequence[TextChunk], embeddings: np.ndarray | None
) -> None:
    """Replace the chunks of `vs_file` (idempotent re-ingestion).

    Call inside the transaction that marks the file completed, so searches see either the old
    chunks or the new ones, never a mixture.
    """
    lexical.for_alias().ensure()
    Chunk.objects.filter(vs_file_id=vs_file.pk).delete()
    owner_id = vs_file.vector_store.owner_id
    rows = []
    for i, c in enumerate(chunks):
        blob = to_bytes(embeddings[i]) if embeddings is not None else None
        rows.append(
            Chunk(
                owner_id=owner_id,
                vector_store_id=vs_file.vector_store_id,
                vs_file_id=vs_file.pk,
                file_id=vs_file.file_id,
                ordinal=c.ordinal,
                text=c.text,
                token_count=c.token_count,
                start_offset=c.start_offset,
                end_offset=c.end_offset,
                embedding=blob,
            )
        )
    Chunk.objects.bulk_create(rows, batch_size=500)


def delete_file_chunks(*, vs_file_id: int | None = None, file_id: str | None = None) -> int:
    """Remove chunks of one vector-store file, or of a File in every store (the index follows)."""
    if vs_file_id is None and file_id is None:
        raise ValueError("vs_file_id or file_id is required")
    qs = Chunk.objects.all()
    if vs_file_id is not None:
        qs = qs.filter(vs_file_id=vs_file_id)
    if file_id is not None:
        qs = qs.filter(file_id=file_id)
    deleted, _ = qs.delete()
    return deleted
