"""Chunk storage and the database lexical index (SQLite FTS5 or PostgreSQL tsvector + GIN).

The index lives in the database, not in process memory, so it survives restarts and every worker
process sees the same one. On SQLite, triggers on the chunk table keep the FTS5 table in sync
(created by migration 0002), so ORM cascades from a deleted File, VectorStore or user also reach
the index; on PostgreSQL the tsvector is a stored generated column.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from django.db import connections

from assistants_app.models import Chunk, VectorStoreFile

from .chunk import TextChunk
from .embeddings import to_bytes

FTS_TABLE = "assistants_app_chunk_fts"
CHUNK_TABLE = "assistants_app_chunk"
# The same statements as migration 0002: recreated if a later migration rebuilt the chunk table,
# because SQLite drops a table's triggers when Django's schema editor remakes it.
_SQLITE_TRIGGERS = {
    "assistants_app_chunk_fts_ai": f"""CREATE TRIGGER IF NOT EXISTS assistants_app_chunk_fts_ai
        AFTER INSERT ON {CHUNK_TABLE} BEGIN
        INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.id, new.text);
    END""",
    "assistants_app_chunk_fts_ad": f"""CREATE TRIGGER IF NOT EXISTS assistants_app_chunk_fts_ad
        AFTER DELETE ON {CHUNK_TABLE} BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.id, old.text);
    END""",
    "assistants_app_chunk_fts_au": f"""CREATE TRIGGER IF NOT EXISTS assistants_app_chunk_fts_au
        AFTER UPDATE OF text ON {CHUNK_TABLE} BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.id, old.text);
        INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.id, new.text);
    END""",
}
_checked: set[tuple[str, str]] = set()
_checked_lock = threading.Lock()

# Words that carry no retrieval signal. FTS5 has no stop list, and OR-ing "the" or "what" into a
# query would score (and slow down on) nearly every chunk.
STOPWORDS = frozenset(
    """a about above after again against all am an and any are as at be because been before being
    below between both but by can could did do does doing down during each few for from further had
    has have having he her here hers herself him himself his how i if in into is it its itself just
    me more most my myself no nor not now of off on once only or other our ours ourselves out over
    own same she should so some such than that the their theirs them themselves then there these
    they this those through to too under until up very was we were what when where which while who
    whom why will with would you your yours yourself yourselves get got also may might must shall
    use used using tell explain describe""".split()
)
MAX_QUERY_TERMS = 64
_WORD = re.compile(r"[^\W_]+")


def query_terms(queries: Iterable[str]) -> list[str]:
    """Distinct lowercase word terms of the queries, stopwords removed (kept if nothing else is left)."""
    words: list[str] = []
    for q in queries:
        words.extend(w.lower() for w in _WORD.findall(q))
    distinct = list(dict.fromkeys(words))
    content = [w for w in distinct if w not in STOPWORDS]
    return (content or distinct)[:MAX_QUERY_TERMS]


def ensure_lexical_index(using: str = "default") -> None:
    """Once per process and database: recreate missing SQLite sync triggers and rebuild the index."""
    conn = connections[using]
    if conn.vendor != "sqlite":
        return
    key = (using, str(conn.settings_dict.get("NAME")))
    if key in _checked:
        return
    with _checked_lock, conn.cursor() as cursor:
        cursor.execute(
            "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [CHUNK_TABLE]
        )
        present = {row[0] for row in cursor.fetchall()}
        missing = [name for name in _SQLITE_TRIGGERS if name not in present]
        if missing:
            for name in missing:
                cursor.execute(_SQLITE_TRIGGERS[name])
            cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
        _checked.add(key)


def rebuild_lexical_index(using: str = "default") -> None:
    """Rebuild the SQLite FTS5 index from the chunk table (PostgreSQL needs nothing)."""
    conn = connections[using]
    if conn.vendor == "sqlite":
        with conn.cursor() as cursor:
            cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")


def replace_chunks(
    vs_file: VectorStoreFile, chunks: Sequence[TextChunk], embeddings: np.ndarray | None
) -> int:
    """Replace the chunks of `vs_file` (idempotent re-ingestion); returns usage_bytes.

    Call inside the transaction that marks the file completed, so searches see either the old
    chunks or the new ones, never a mixture.
    """
    ensure_lexical_index()
    Chunk.objects.filter(vs_file_id=vs_file.pk).delete()
    owner_id = vs_file.vector_store.owner_id
    rows = []
    usage = 0
    for i, c in enumerate(chunks):
        blob = to_bytes(embeddings[i]) if embeddings is not None else None
        usage += len(c.text.encode("utf-8")) + (len(blob) if blob else 0)
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
    return usage


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


def lexical_candidates(
    owner_id: int,
    vector_store_ids: Sequence[str],
    terms: Sequence[str],
    limit: int,
    vs_file_ids: Sequence[int] | None = None,
    using: str = "default",
) -> list[tuple[int, float]]:
    """(chunk_id, raw score) best first; higher raw is better. Filtered by owner AND store."""
    if not terms or not vector_store_ids:
        return []
    conn = connections[using]
    params: list[Any]
    store_marks = ", ".join(["%s"] * len(vector_store_ids))
    file_clause = ""
    if vs_file_ids is not None:
        if not vs_file_ids:
            return []
        file_clause = f" AND c.vs_file_id IN ({', '.join(['%s'] * len(vs_file_ids))})"
    if conn.vendor == "sqlite":
        ensure_lexical_index(using)
        # Each term quoted: query text can never become FTS5 syntax (NEAR, column filters, ...).
        match = " OR ".join(f'"{t}"' for t in terms)
        sql = (
            f"SELECT c.id, -bm25({FTS_TABLE}) AS score FROM {FTS_TABLE} "
            f"JOIN {CHUNK_TABLE} c ON c.id = {FTS_TABLE}.rowid "
            f"WHERE {FTS_TABLE} MATCH %s AND c.owner_id = %s AND c.vector_store_id IN ({store_marks})"
            f"{file_clause} ORDER BY score DESC, c.id LIMIT %s"
        )
        params = [match, owner_id, *vector_store_ids, *(vs_file_ids or []), limit]
    elif conn.vendor == "postgresql":
        # Terms are [^\W_]+ words, so joining them with | is always a valid to_tsquery expression.
        sql = (
            f"SELECT c.id, ts_rank_cd(c.search_tsv, q) AS score "
            f"FROM {CHUNK_TABLE} c, to_tsquery('english', %s) q "
            f"WHERE c.search_tsv @@ q AND c.owner_id = %s AND c.vector_store_id IN ({store_marks})"
            f"{file_clause} ORDER BY score DESC, c.id LIMIT %s"
        )
        params = [" | ".join(terms), owner_id, *vector_store_ids, *(vs_file_ids or []), limit]
    else:
        raise NotImplementedError(f"file search has no lexical index for database vendor {conn.vendor!r}")
    with conn.cursor() as cursor:
        cursor.execute(sql, params)
        return [(int(row[0]), float(row[1])) for row in cursor.fetchall()]
