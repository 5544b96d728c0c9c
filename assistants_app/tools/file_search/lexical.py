"""The database's lexical index of chunks: one small class per database, chosen by `for_alias`.

- SQLite: an FTS5 table kept in sync with the chunk table by triggers (migrations 0002/0003),
  ranked with bm25. Triggers that a later migration dropped (SQLite drops a table's triggers when
  Django's schema editor remakes it) are recreated, and the table rebuilt, once per process.
- PostgreSQL: a stored generated tsvector column with a GIN index, ranked with ts_rank.

Both filter every result on the owner and the requested vector stores. Ranking cost is
proportional to the rows matching any term (~2 us a row on SQLite, ~3 on PostgreSQL), so on large
stores (more chunks than FILE_SEARCH_LEXICAL_BUDGET) it is bounded twice:
- `prune`: terms are kept from the rarest up while their summed document frequency (table-wide)
  stays within the budget (the rarest term is always kept). Common terms carry little ranking
  signal (bm25's IDF of a term in half the rows is ~0).
- Only chunks containing at least two of the kept terms are ranked (when there are at least as
  many as asked for, else any term), scored exactly as by all the terms. At 100k chunks that is
  ~10x fewer rows, with topic recall@5 unchanged (docs/benchmarks.md): a chunk with one OR-ed term
  rarely outranks those with two. Small stores are never pruned nor restricted.
"""

from __future__ import annotations

import itertools
import re
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar

from django.conf import settings
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

FTS_TABLE = "assistants_app_chunk_fts"
CHUNK_TABLE = "assistants_app_chunk"
_WORD = re.compile(r"[^\W_]+")


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
# The "at least two terms" match grows with the square of the terms (see LexicalIndex.candidates).
MAX_TWO_TERM_TERMS = 8

# (database NAME, owner, stores, budget) -> (when counted, more chunks than the budget)
_large_cache: dict[tuple[str, int, tuple[str, ...], int], tuple[float, bool]] = {}
STORE_SIZE_TTL = 60.0
STORE_SIZE_CACHE = 4096


def query_terms(queries: Iterable[str]) -> list[str]:
    """Distinct lowercase word terms of the queries, stopwords removed (kept if nothing else is left)."""
    words: list[str] = []
    for q in queries:
        words.extend(w.lower() for w in _WORD.findall(q))
    distinct = list(dict.fromkeys(words))
    content = [w for w in distinct if w not in STOPWORDS]
    return (content or distinct)[:MAX_QUERY_TERMS]


def lexical_budget() -> int:
    return int(settings.FILE_SEARCH_LEXICAL_BUDGET)


class LexicalIndex:
    vendor: ClassVar[str]
    # Per-term raw score at which the lexical score is 0.5, set from bench/retrieval_eval so that the
    # median top hit scores ~0.5 on both databases (bm25 and ts_rank live on very different scales).
    half_score: ClassVar[float]

    def __init__(self, conn: BaseDatabaseWrapper) -> None:
        self.conn = conn

    def ensure(self) -> None:
        """Make sure the index is complete before writing or reading it."""

    def rebuild(self) -> None:
        """Rebuild the index from the chunk table."""

    def candidates(
        self,
        owner_id: int,
        vector_store_ids: Sequence[str],
        terms: Sequence[str],
        limit: int,
        vs_file_ids: Sequence[int] | None = None,
    ) -> list[tuple[int, float]]:
        """(chunk_id, raw score) best first; higher raw is better. Filtered by owner AND store."""
        if not terms or not vector_store_ids or (vs_file_ids is not None and not vs_file_ids):
            return []
        self.ensure()
        with self.conn.cursor() as cursor:
            kept, large = self.prune(cursor, list(terms), owner_id, vector_store_ids)
            if large and 2 <= len(kept) <= MAX_TWO_TERM_TERMS:
                ranked = self._rank(cursor, kept, owner_id, vector_store_ids, limit, vs_file_ids, True)
                if len(ranked) >= limit:
                    return ranked
            return self._rank(cursor, kept, owner_id, vector_store_ids, limit, vs_file_ids, False)

    def _rank(
        self,
        cursor: Any,
        terms: Sequence[str],
        owner_id: int,
        vector_store_ids: Sequence[str],
        limit: int,
        vs_file_ids: Sequence[int] | None,
        two_or_more: bool,
    ) -> list[tuple[int, float]]:
        """The ranked query, filtered exactly by owner AND store (AND file) in its WHERE clause."""
        store_marks = ", ".join(["%s"] * len(vector_store_ids))
        file_clause = ""
        if vs_file_ids is not None:
            file_clause = f" AND c.vs_file_id IN ({', '.join(['%s'] * len(vs_file_ids))})"
        sql = self._ranked_sql(store_marks, file_clause)
        query = self._match(terms, vector_store_ids, two_or_more)
        cursor.execute(sql, [*query, owner_id, *vector_store_ids, *(vs_file_ids or []), limit])
        return [(int(row[0]), float(row[1])) for row in cursor.fetchall()]

    def prune(
        self, cursor: Any, terms: list[str], owner_id: int, vector_store_ids: Sequence[str]
    ) -> tuple[list[str], bool]:
        """(the terms to match, whether the stores are large enough to bound the query's cost)."""
        budget = lexical_budget()
        if budget <= 0 or not self._stores_are_large(cursor, owner_id, vector_store_ids, budget):
            return terms, False
        dfs = self._document_frequencies(cursor, terms) if len(terms) > 1 else None
        if dfs is None:
            return terms, True
        kept: list[str] = []
        total = 0
        for t in sorted(terms, key=lambda t: (dfs.get(t, 0), t)):
            if kept and total + dfs.get(t, 0) > budget:
                break
            kept.append(t)
            total += dfs.get(t, 0)
        return kept, True

    def _stores_are_large(
        self, cursor: Any, owner_id: int, vector_store_ids: Sequence[str], budget: int
    ) -> bool:
        """More than `budget` chunks in the searched stores, counted at most once a minute: from the
        (owner, vector_store) index, stopping at budget + 1 rows, it still costs ~1 ms on SQLite and
        ~2-3 ms on PostgreSQL at 100k chunks. A store that just grew is searched unpruned for a minute.
        """
        key = (str(self.conn.settings_dict.get("NAME")), owner_id, tuple(sorted(vector_store_ids)), budget)
        now = time.monotonic()
        cached = _large_cache.get(key)
        if cached is not None and now - cached[0] <= STORE_SIZE_TTL:
            return cached[1]
        marks = ", ".join(["%s"] * len(vector_store_ids))
        cursor.execute(
            f"SELECT count(*) FROM (SELECT 1 FROM {CHUNK_TABLE} WHERE owner_id = %s "
            f"AND vector_store_id IN ({marks}) LIMIT %s) AS capped",
            [owner_id, *vector_store_ids, budget + 1],
        )
        large = int(cursor.fetchone()[0]) > budget
        if len(_large_cache) >= STORE_SIZE_CACHE:
            _large_cache.clear()
        _large_cache[key] = (now, large)
        return large

    # --- what each database says differently ---------------------------------------------------
    def _ranked_sql(self, store_marks: str, file_clause: str) -> str:
        """SELECT chunk id, score: parameters (*match query, owner, *stores, *files, limit)."""
        raise NotImplementedError

    def _match(self, terms: Sequence[str], vector_store_ids: Sequence[str], two_or_more: bool) -> list[str]:
        """The parameters that stand for the query in _ranked_sql. `two_or_more`: match only the
        chunks containing at least two of the terms, scored exactly as by all of them."""
        raise NotImplementedError

    def _document_frequencies(self, cursor: Any, terms: list[str]) -> dict[str, int] | None:
        """Each term's number of chunks in the whole table (an upper bound of its number in the
        searched stores), or None when there is no estimate."""
        raise NotImplementedError


class SqliteFts5(LexicalIndex):
    vendor = "sqlite"
    half_score = 2.0
    # The same statements as migration 0003: recreated if a later migration rebuilt the chunk table.
    COLUMNS = "text, vector_store_id"
    TRIGGERS: ClassVar[dict[str, str]] = {
        "assistants_app_chunk_fts_ai": f"""CREATE TRIGGER IF NOT EXISTS assistants_app_chunk_fts_ai
            AFTER INSERT ON {CHUNK_TABLE} BEGIN
            INSERT INTO {FTS_TABLE}(rowid, {COLUMNS}) VALUES (new.id, new.text, new.vector_store_id);
        END""",
        "assistants_app_chunk_fts_ad": f"""CREATE TRIGGER IF NOT EXISTS assistants_app_chunk_fts_ad
            AFTER DELETE ON {CHUNK_TABLE} BEGIN
            INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {COLUMNS})
            VALUES ('delete', old.id, old.text, old.vector_store_id);
        END""",
        "assistants_app_chunk_fts_au": f"""CREATE TRIGGER IF NOT EXISTS assistants_app_chunk_fts_au
            AFTER UPDATE OF {COLUMNS} ON {CHUNK_TABLE} BEGIN
            INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, {COLUMNS})
            VALUES ('delete', old.id, old.text, old.vector_store_id);
            INSERT INTO {FTS_TABLE}(rowid, {COLUMNS}) VALUES (new.id, new.text, new.vector_store_id);
        END""",
    }
    _checked: ClassVar[set[tuple[str, str]]] = set()
    _checked_lock: ClassVar[threading.Lock] = threading.Lock()

    def ensure(self) -> None:
        key = (self.conn.alias, str(self.conn.settings_dict.get("NAME")))
        if key in self._checked:
            return
        with self._checked_lock, self.conn.cursor() as cursor:
            cursor.execute(
                "SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = %s", [CHUNK_TABLE]
            )
            present = {row[0] for row in cursor.fetchall()}
            missing = [name for name in self.TRIGGERS if name not in present]
            if missing:
                for name in missing:
                    cursor.execute(self.TRIGGERS[name])
                cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")
            self._checked.add(key)

    def rebuild(self) -> None:
        with self.conn.cursor() as cursor:
            cursor.execute(f"INSERT INTO {FTS_TABLE}({FTS_TABLE}) VALUES ('rebuild')")

    def _ranked_sql(self, store_marks: str, file_clause: str) -> str:
        return (
            # Weight 0 for the vector_store_id column: it scopes the match but must not score.
            f"SELECT c.id, -bm25({FTS_TABLE}, 1.0, 0.0) AS score FROM {FTS_TABLE} "
            f"JOIN {CHUNK_TABLE} c ON c.id = {FTS_TABLE}.rowid "
            f"WHERE {FTS_TABLE} MATCH %s AND c.owner_id = %s AND c.vector_store_id IN ({store_marks})"
            f"{file_clause} ORDER BY score DESC, c.id LIMIT %s"
        )

    def _match(self, terms: Sequence[str], vector_store_ids: Sequence[str], two_or_more: bool) -> list[str]:
        # Each term quoted: query text can never become FTS5 syntax (NEAR, column filters, ...).
        quoted = [f'"{t}"' for t in terms]
        match = "(" + " OR ".join(quoted) + ")"
        if two_or_more:
            # Any term, NOT "exactly one": (a OR b OR c) NOT ((a NOT (b OR c)) OR (b NOT (a OR c)) ...).
            # FTS5 reports no instances for phrases of a sub-expression that did not match the row, and
            # the right side of a NOT never matches a returned row, so bm25 scores each row exactly
            # as the plain OR does (checked in tests/tools/file_search/test_lexical.py).
            exactly_one = " OR ".join(
                f"({q} NOT ({' OR '.join(o for o in quoted if o != q)}))" for q in quoted
            )
            match = f"({match} NOT ({exactly_one}))"
        return [f"{self.store_scope(vector_store_ids)} AND text : {match}"]

    @staticmethod
    def store_scope(vector_store_ids: Sequence[str]) -> str:
        """An FTS5 expression matching chunks of these stores through the indexed vector_store_id.

        unicode61 splits "vs_<suffix>" at the underscore; "vs" is in every row, so only the suffix is
        matched. Parts are word characters only, so the quoted phrases are always valid FTS5 syntax.
        This is a prefilter: the SQL still checks owner_id and vector_store_id exactly.
        """
        phrases = []
        for store_id in vector_store_ids:
            parts = _WORD.findall(store_id)
            if len(parts) > 1 and parts[0].lower() == "vs":
                parts = parts[1:]
            phrases.append('"' + " ".join(parts) + '"')
        return "vector_store_id : (" + " OR ".join(phrases) + ")"

    def _rank(
        self,
        cursor: Any,
        terms: Sequence[str],
        owner_id: int,
        vector_store_ids: Sequence[str],
        limit: int,
        vs_file_ids: Sequence[int] | None,
        two_or_more: bool,
    ) -> list[tuple[int, float]]:
        """Ranked inside FTS5 alone, then checked exactly; the JOIN query whenever a check fails.

        Joining the chunk table costs a B-tree lookup per matching row, half of the query at 100k
        chunks. The store scope in the MATCH yields a superset of the exact rows, so its top `limit`
        is ranked without the join and checked on owner_id and vector_store_id: if all pass, they
        are the exact set's top `limit` too (same scores and rowid tie-break); if any fails
        (another owner's store id, a scope collision), the JOIN query answers. So does a file filter.
        """
        if vs_file_ids is not None:
            return super()._rank(cursor, terms, owner_id, vector_store_ids, limit, vs_file_ids, two_or_more)
        cursor.execute(
            f"SELECT rowid, -bm25({FTS_TABLE}, 1.0, 0.0) AS score FROM {FTS_TABLE} "
            f"WHERE {FTS_TABLE} MATCH %s ORDER BY score DESC, rowid LIMIT %s",
            [*self._match(terms, vector_store_ids, two_or_more), limit],
        )
        ranked = [(int(row[0]), float(row[1])) for row in cursor.fetchall()]
        if not ranked:
            return ranked
        cursor.execute(
            f"SELECT count(*) FROM {CHUNK_TABLE} WHERE id IN ({', '.join(['%s'] * len(ranked))}) "
            f"AND owner_id = %s AND vector_store_id IN ({', '.join(['%s'] * len(vector_store_ids))})",
            [*(cid for cid, _ in ranked), owner_id, *vector_store_ids],
        )
        if int(cursor.fetchone()[0]) == len(ranked):
            return ranked
        return super()._rank(cursor, terms, owner_id, vector_store_ids, limit, None, two_or_more)

    def _document_frequencies(self, cursor: Any, terms: list[str]) -> dict[str, int] | None:
        """Counted in the text column of the whole table, not within the store scope.

        What the ranked query's cost follows (FTS5 reads a term's whole doclist, and bm25 counts it
        for the IDF), like PostgreSQL's table-wide statistics. Counting inside the scope (an
        intersection with the scope's doclist per term) cost ~7 ms of a query at 100k chunks, the
        table-wide counts ~2.5 ms.
        """
        dfs = {}
        for t in terms:
            cursor.execute(f"SELECT count(*) FROM {FTS_TABLE} WHERE {FTS_TABLE} MATCH %s", [f'text : "{t}"'])
            dfs[t] = int(cursor.fetchone()[0])
        return dfs


# database NAME -> (when read, lexeme -> frequency, rows, floor frequency)
_pg_stats_cache: dict[str, tuple[float, dict[str, float], float, float]] = {}
PG_STATS_TTL = 60.0


class PostgresFullText(LexicalIndex):
    vendor = "postgresql"
    half_score = 0.002

    def _ranked_sql(self, store_marks: str, file_clause: str) -> str:
        # ts_rank with normalization 1 (divide by 1 + log(length)): on bench/retrieval_eval it found
        # the labeled passage in the top 5 for 85% of questions, ts_rank_cd for 46-49% (cover density
        # rewards terms close together, which OR-ed natural-language terms rarely are).
        return (
            f"SELECT c.id, ts_rank(c.search_tsv, to_tsquery('english', %s), 1) AS score "
            f"FROM {CHUNK_TABLE} c WHERE c.search_tsv @@ to_tsquery('english', %s) "
            f"AND c.owner_id = %s AND c.vector_store_id IN ({store_marks})"
            f"{file_clause} ORDER BY score DESC, c.id LIMIT %s"
        )

    def _match(self, terms: Sequence[str], vector_store_ids: Sequence[str], two_or_more: bool) -> list[str]:
        # Terms are [^\W_]+ words, so joining them with | and & is always a valid to_tsquery
        # expression. Scored by all the terms (ts_rank of a row only counts the lexemes it has),
        # matched by any of them or, with two_or_more, by any two: (a & b) | (a & c) | (b & c).
        score = " | ".join(terms)
        if not two_or_more:
            return [score, score]
        return [score, " | ".join(f"({a} & {b})" for a, b in itertools.combinations(terms, 2))]

    def _document_frequencies(self, cursor: Any, terms: list[str]) -> dict[str, int] | None:
        """Estimated from ANALYZE's lexeme statistics (no scan at query time); None when the table
        has not been analyzed."""
        now = time.monotonic()
        db = str(self.conn.settings_dict.get("NAME"))
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
        if not freq_of:
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


def rebuild_lexical_index(using: str = "default") -> None:
    """Rebuild the index from the chunk table (PostgreSQL's needs nothing)."""
    for_alias(using).rebuild()


INDEXES: dict[str, type[LexicalIndex]] = {cls.vendor: cls for cls in (SqliteFts5, PostgresFullText)}


def for_alias(using: str = "default") -> LexicalIndex:
    conn = connections[using]
    cls = INDEXES.get(conn.vendor)
    if cls is None:
        raise NotImplementedError(f"file search has no lexical index for database vendor {conn.vendor!r}")
    return cls(conn)
