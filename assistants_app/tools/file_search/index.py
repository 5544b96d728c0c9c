"""Chunk storage and the database lexical index (SQLite FTS5 or PostgreSQL tsvector + GIN).

The index lives in the database, not in process memory, so it survives restarts and every worker
process sees the same one. On SQLite, triggers on the chunk table keep the FTS5 table in sync
(created by migration 0002), so ORM cascades from a deleted File, VectorStore or user also reach
the index; on PostgreSQL the tsvector is a stored generated column.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connections

from assistants_app.models import Chunk, VectorStoreFile

from .chunk import TextChunk
from .embeddings import to_bytes

FTS_TABLE = "assistants_app_chunk_fts"
CHUNK_TABLE = "assistants_app_chunk"
# The same statements as migration 0003: recreated if a later migration rebuilt the chunk table,
# because SQLite drops a table's triggers when Django's schema editor remakes it.
FTS_COLUMNS = "text, vector_store_id"
_SQLITE_TRIGGERS = {
    "assistants_app_chunk_fts_ai": f"""CREATE TRIGGER IF NOT EXISTS assistants_app_chunk_fts_ai
        AFTER INSERT ON {CHUNK_TABLE} BEGIN
        INSERT INTO {FTS_TABLE}(rowid, {FTS_COLUMNS}) VALUES (new.id, new.text, new.vector_store_id);
    END""",
    "assistants_app_chunk_fts_ad": f"""CREATE TRIGGER IF NOT EXISTS assistants_app_chunk_fts_ad
        AFTER DELETE ON {CHUNK_TABLE} BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {FTS_COLUMNS})
        VALUES ('delete', old.id, old.text, old.vector_store_id);
    END""",
    "assistants_app_chunk_fts_au": f"""CREATE TRIGGER IF NOT EXISTS assistants_app_chunk_fts_au
        AFTER UPDATE OF {FTS_COLUMNS} ON {CHUNK_TABLE} BEGIN
        INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {FTS_COLUMNS})
        VALUES ('delete', old.id, old.text, old.vector_store_id);
        INSERT INTO {FTS_TABLE}(rowid, {FTS_COLUMNS}) VALUES (new.id, new.text, new.vector_store_id);
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
    ensure_lexical_index()
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


def _fts_store_scope(vector_store_ids: Sequence[str]) -> str:
    """An FTS5 expression matching chunks of these stores through the indexed vector_store_id column.

    unicode61 splits "vs_<suffix>" at the underscore; "vs" is in every row, so only the suffix is
    matched. Parts are word characters only, so the quoted phrases are always valid FTS5 syntax. This is
    a prefilter: the SQL still checks owner_id and vector_store_id exactly.
    """
    phrases = []
    for store_id in vector_store_ids:
        parts = _WORD.findall(store_id)
        if len(parts) > 1 and parts[0].lower() == "vs":
            parts = parts[1:]
        phrases.append('"' + " ".join(parts) + '"')
    return "vector_store_id : (" + " OR ".join(phrases) + ")"


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
    if vs_file_ids is not None and not vs_file_ids:
        return []
    store_marks = ", ".join(["%s"] * len(vector_store_ids))
    file_clause = ""
    if vs_file_ids is not None:
        file_clause = f" AND c.vs_file_id IN ({', '.join(['%s'] * len(vs_file_ids))})"
    filters = [owner_id, *vector_store_ids, *(vs_file_ids or [])]
    if conn.vendor == "sqlite":
        ensure_lexical_index(using)
        sql = (
            # Weight 0 for the vector_store_id column: it scopes the match but must not score.
            f"SELECT c.id, -bm25({FTS_TABLE}, 1.0, 0.0) AS score FROM {FTS_TABLE} "
            f"JOIN {CHUNK_TABLE} c ON c.id = {FTS_TABLE}.rowid "
            f"WHERE {FTS_TABLE} MATCH %s AND c.owner_id = %s AND c.vector_store_id IN ({store_marks})"
            f"{file_clause} ORDER BY score DESC, c.id LIMIT %s"
        )
    elif conn.vendor == "postgresql":
        # ts_rank with normalization 1 (divide by 1 + log(length)): on bench/retrieval_eval it
        # found the labeled passage in the top 5 for 85% of questions, ts_rank_cd for 46-49%
        # (cover density rewards terms close together, which OR-ed natural-language terms rarely are).
        sql = (
            f"SELECT c.id, ts_rank(c.search_tsv, q, 1) AS score "
            f"FROM {CHUNK_TABLE} c, to_tsquery('english', %s) q "
            f"WHERE c.search_tsv @@ q AND c.owner_id = %s AND c.vector_store_id IN ({store_marks})"
            f"{file_clause} ORDER BY score DESC, c.id LIMIT %s"
        )
    else:
        raise NotImplementedError(f"file search has no lexical index for database vendor {conn.vendor!r}")
    with conn.cursor() as cursor:
        kept = prune_terms(cursor, conn.vendor, list(terms), owner_id, vector_store_ids)
        if conn.vendor == "sqlite":
            # Each term quoted: query text can never become FTS5 syntax (NEAR, column filters, ...).
            query = (
                f"{_fts_store_scope(vector_store_ids)} AND text : ("
                + " OR ".join(f'"{t}"' for t in kept)
                + ")"
            )
        else:
            # Terms are [^\W_]+ words, so joining them with | is always a valid to_tsquery expression.
            query = " | ".join(kept)
        params: list[Any] = [query, *filters, limit]
        cursor.execute(sql, params)
        return [(int(row[0]), float(row[1])) for row in cursor.fetchall()]


# --- query term pruning ------------------------------------------------------------------------------
# Ranking cost is proportional to the number of rows matching ANY query term (bm25 / ts_rank is
# computed for each; ~8 us a row on SQLite): a term in 30% of 100k chunks alone costs ~250 ms.
# Such terms carry little ranking signal (bm25's IDF of a term in half the rows is ~0), so when
# the searched stores are large, terms are kept from the rarest up while their summed document
# frequency stays within a budget (the rarest term is always kept). Small stores are never pruned.


def lexical_budget() -> int:
    return int(settings.FILE_SEARCH_LEXICAL_BUDGET)


def prune_terms(
    cursor: Any, vendor: str, terms: list[str], owner_id: int, vector_store_ids: Sequence[str]
) -> list[str]:
    budget = lexical_budget()
    if len(terms) <= 1 or budget <= 0:
        return terms
    if vendor == "sqlite":
        marks = ", ".join(["%s"] * len(vector_store_ids))
        # Answered from the (owner, vector_store) index.
        cursor.execute(
            f"SELECT count(*) FROM {CHUNK_TABLE} WHERE owner_id = %s AND vector_store_id IN ({marks})",
            [owner_id, *vector_store_ids],
        )
        if int(cursor.fetchone()[0]) <= budget:
            return terms
        scope = _fts_store_scope(vector_store_ids)
        dfs = {}
        for t in terms:
            cursor.execute(
                f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s", [f'{scope} AND "{t}"']
            )
            dfs[t] = int(cursor.fetchone()[0])
    elif vendor == "postgresql":
        found = _pg_estimated_dfs(cursor, terms, budget)
        if found is None:
            return terms
        dfs = found
    else:
        return terms
    ordered = sorted(terms, key=lambda t: (dfs.get(t, 0), t))
    kept: list[str] = []
    total = 0
    for t in ordered:
        if kept and total + dfs.get(t, 0) > budget:
            break
        kept.append(t)
        total += dfs.get(t, 0)
    return kept


_pg_stats_cache: dict[str, tuple[float, dict[str, float], float, float]] = {}
PG_STATS_TTL = 60.0


def _pg_estimated_dfs(cursor: Any, terms: list[str], budget: int) -> dict[str, int] | None:
    """Document frequencies estimated from ANALYZE's lexeme statistics (no scan at query time).

    None when the table has not been analyzed or is small enough that pruning is pointless.
    """
    now = time.monotonic()
    db = str(cursor.db.settings_dict.get("NAME"))
    cached = _pg_stats_cache.get(db)
    if cached is None or now - cached[0] > PG_STATS_TTL:
        cursor.execute(
            "SELECT s.most_common_elems::text::text[], s.most_common_elem_freqs, c.reltuples "
            "FROM pg_class c LEFT JOIN pg_stats s ON s.tablename = c.relname AND s.attname = 'search_tsv' "
            "WHERE c.relname = %s",
            [CHUNK_TABLE],
        )
        row = cursor.fetchone()
        elems, freqs, reltuples = row or (None, None, 0.0)
        freq_of = dict(zip(elems or [], freqs or [], strict=False))
        # The last entries of most_common_elem_freqs are min / max / null frequency, not elements.
        floor = float(freqs[len(elems)]) if elems and freqs and len(freqs) > len(elems) else 0.0
        cached = (now, freq_of, float(reltuples or 0.0), floor)
        _pg_stats_cache[db] = cached
    _, freq_of, rows, floor = cached
    if rows <= budget or not freq_of:
        return None
    cursor.execute(
        "SELECT t, tsvector_to_array(to_tsvector('english', t)) FROM unnest(%s::text[]) AS t", [terms]
    )
    dfs: dict[str, int] = {}
    for term, lexemes in cursor.fetchall():
        # A lexeme missing from the most-common list is rarer than the least common one listed.
        freq = max((freq_of.get(lx, floor / 2) for lx in lexemes or []), default=0.0)
        dfs[term] = int(freq * rows)
    return dfs
