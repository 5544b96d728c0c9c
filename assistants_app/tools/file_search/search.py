"""File search over vector stores: lexical ranking, fused with dense similarity when configured.

Ranking:
- Lexical only (no EMBEDDINGS_BASE_URL): FTS5 bm25 / PostgreSQL ts_rank order. The score is
  the raw relevance per query term squashed into [0, 1): s / (s + K). It is absolute (does not
  depend on the other results), so `score_threshold` drops weak matches, not "all but the best".
- Hybrid: reciprocal-rank fusion (k=60) of the lexical and the dense (cosine) candidate lists.
  The score is the fused value divided by its maximum (first in every list = 1.0).

Isolation: every candidate query filters on the owner AND the requested vector stores; a
vector_store_id of another owner simply contributes nothing.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.db import connection
from django.db.models import Count, Max

from assistants_app.lib import filters as filters_
from assistants_app.models import Chunk, VectorStoreFile

from .embeddings import embed_texts, embeddings_configured, from_bytes
from .lexical import for_alias, query_terms

log = logging.getLogger(__name__)

RRF_K = 60
MIN_CANDIDATES = 50


class SearchError(ValueError):
    """A bad search request; `param` names the field for a 400 response."""

    def __init__(self, message: str, param: str) -> None:
        super().__init__(message)
        self.message = message
        self.param = param


@dataclass(frozen=True)
class SearchResult:
    file_id: str
    filename: str
    score: float
    text: str
    chunk_id: int
    attributes: dict[str, Any] = field(default_factory=dict)
    vector_store_id: str = ""


def search(
    owner_id: int,
    vector_store_ids: Sequence[str],
    query: str | Sequence[str],
    max_num_results: int = 20,
    score_threshold: float = 0.0,
    filters: Mapping[str, Any] | None = None,
) -> list[SearchResult]:
    queries = _validate(vector_store_ids, query, max_num_results, score_threshold)
    if filters is not None:
        try:
            filters = filters_.parse(filters)
        except filters_.FilterError as exc:
            raise SearchError(exc.message, exc.param) from None
    store_ids = list(dict.fromkeys(vector_store_ids))
    allowed_files = _files_matching(owner_id, store_ids, filters) if filters is not None else None
    if allowed_files is not None and not allowed_files:
        return []

    depth = max(MIN_CANDIDATES, 3 * max_num_results)
    terms = query_terms(queries)
    index = for_alias()
    lexical = index.candidates(owner_id, store_ids, terms, depth, allowed_files)
    dense = (
        _dense_candidates(owner_id, store_ids, queries, depth, allowed_files)
        if embeddings_configured()
        else None
    )

    scored: list[tuple[int, float]]
    if dense is None:
        half = index.half_score * max(1, len(terms))
        scored = [(cid, raw / (raw + half)) for cid, raw in lexical if raw > 0]
    else:
        scored = _rrf([lexical, dense])
    scored = [(cid, s) for cid, s in scored if s >= score_threshold]
    return _materialize(scored, max_num_results)


def _validate(
    vector_store_ids: Sequence[str], query: str | Sequence[str], max_num_results: int, score_threshold: float
) -> list[str]:
    if isinstance(vector_store_ids, str) or not vector_store_ids:
        raise SearchError("vector_store_ids must be a non-empty list.", "vector_store_ids")
    queries = [query] if isinstance(query, str) else list(query)
    if not queries or not all(isinstance(q, str) and q.strip() for q in queries):
        raise SearchError("query must be a non-empty string or a list of non-empty strings.", "query")
    if (
        isinstance(max_num_results, bool)
        or not isinstance(max_num_results, int)
        or not 1 <= max_num_results <= 50
    ):
        raise SearchError("max_num_results must be an integer between 1 and 50.", "max_num_results")
    if (
        isinstance(score_threshold, bool)
        or not isinstance(score_threshold, int | float)
        or not 0 <= score_threshold <= 1
    ):
        raise SearchError(
            "score_threshold must be a number between 0 and 1.", "ranking_options.score_threshold"
        )
    return queries


def _rrf(lists: Sequence[Sequence[tuple[int, float]]]) -> list[tuple[int, float]]:
    fused: dict[int, float] = {}
    for ranked in lists:
        for rank, (cid, _) in enumerate(ranked, start=1):
            fused[cid] = fused.get(cid, 0.0) + 1.0 / (RRF_K + rank)
    best = len(lists) / (RRF_K + 1)
    return sorted(((cid, s / best) for cid, s in fused.items()), key=lambda x: (-x[1], x[0]))


def _materialize(scored: list[tuple[int, float]], limit: int) -> list[SearchResult]:
    if not scored:
        return []
    head = scored[: limit * 2]  # room for duplicates removed below
    # values_list, not model instances: building ORM objects was most of a query's time.
    rows = {
        row[0]: row
        for row in Chunk.objects.filter(id__in=[cid for cid, _ in head]).values_list(
            "id",
            "file_id",
            "file__filename",
            "text",
            "start_offset",
            "end_offset",
            "vs_file__attributes",
            "vector_store_id",
        )
    }
    results: list[SearchResult] = []
    seen: set[tuple[str, int, int]] = set()
    for cid, score in head:
        row = rows.get(cid)
        if row is None:  # deleted between ranking and loading
            continue
        _, file_id, filename, text, start, end, attributes, store_id = row
        # The same file in two of the requested stores yields the same passage twice: keep one.
        if (file_id, start, end) in seen:
            continue
        seen.add((file_id, start, end))
        results.append(
            SearchResult(
                file_id=file_id,
                filename=filename,
                score=round(min(1.0, max(0.0, score)), 6),
                text=text,
                chunk_id=cid,
                attributes=dict(attributes or {}),
                vector_store_id=store_id,
            )
        )
        if len(results) >= limit:
            break
    return results


# --- dense ---------------------------------------------------------------------------------------

_DenseBlock = tuple[
    tuple[int, int], np.ndarray, np.ndarray, np.ndarray
]  # signature, ids, vs_file_ids, matrix
_dense_cache: OrderedDict[tuple[str, int, str], _DenseBlock] = OrderedDict()
_dense_lock = threading.Lock()
DENSE_CACHE_STORES = 64


def _dense_block(owner_id: int, store_id: str) -> _DenseBlock | None:
    """A vector store's embedding matrix, cached per process and reloaded when its chunks change.

    Chunk ids only grow, so (count, max id) changes whenever chunks are added or removed. The
    signature is computed over all of the store's chunks, not only embedded ones: that query is
    answered from the (owner, vector_store) index without reading the vector blobs.
    """
    store_chunks = Chunk.objects.filter(owner_id=owner_id, vector_store_id=store_id)
    agg = store_chunks.aggregate(n=Count("id"), top=Max("id"))
    if not agg["n"]:
        return None
    signature = (int(agg["n"]), int(agg["top"]))
    key = (str(connection.settings_dict.get("NAME")), owner_id, store_id)
    with _dense_lock:
        cached = _dense_cache.get(key)
        if cached is not None and cached[0] == signature:
            _dense_cache.move_to_end(key)
            return cached
    rows: list[Any] = list(
        store_chunks.filter(embedding__isnull=False).values_list("id", "vs_file_id", "embedding")
    )
    if not rows:
        return None
    dims = {len(bytes(r[2])) for r in rows}
    if len(dims) != 1:  # the embeddings model changed: keep the majority dimension only
        common = max(dims, key=lambda d: sum(1 for r in rows if len(bytes(r[2])) == d))
        rows = [r for r in rows if len(bytes(r[2])) == common]
    block: _DenseBlock = (
        signature,
        np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows)),
        np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows)),
        np.vstack([from_bytes(r[2]) for r in rows]),
    )
    with _dense_lock:
        _dense_cache[key] = block
        while len(_dense_cache) > DENSE_CACHE_STORES:
            _dense_cache.popitem(last=False)
    return block


def _dense_candidates(
    owner_id: int,
    store_ids: Sequence[str],
    queries: Sequence[str],
    limit: int,
    allowed_files: Sequence[int] | None,
) -> list[tuple[int, float]] | None:
    try:
        qv = embed_texts(list(queries))
    except Exception:
        # Search still answers (lexically) when the embeddings endpoint is down.
        log.warning("file search: query embedding failed; lexical results only", exc_info=True)
        return None
    ids_parts, sims_parts = [], []
    for store_id in store_ids:
        block = _dense_block(owner_id, store_id)
        if block is None or block[3].shape[1] != qv.shape[1]:
            continue
        _, ids, file_ids, matrix = block
        sims = (matrix @ qv.T).max(axis=1)
        if allowed_files is not None:
            mask = np.isin(file_ids, np.asarray(list(allowed_files), dtype=np.int64))
            ids, sims = ids[mask], sims[mask]
        ids_parts.append(ids)
        sims_parts.append(sims)
    if not ids_parts:
        return []
    ids = np.concatenate(ids_parts)
    sims = np.concatenate(sims_parts)
    k = min(limit, len(ids))
    top = np.argpartition(-sims, k - 1)[:k] if k < len(ids) else np.arange(len(ids))
    top = top[np.argsort(-sims[top], kind="stable")]
    return [(int(ids[i]), float(sims[i])) for i in top]


def _files_matching(owner_id: int, store_ids: Sequence[str], filters: Mapping[str, Any]) -> list[int]:
    rows = VectorStoreFile.objects.filter(
        vector_store__owner_id=owner_id,
        vector_store_id__in=store_ids,
        status=VectorStoreFile.Status.COMPLETED,
    ).values_list("id", "attributes")
    return [pk for pk, attrs in rows if filters_.matches(attrs or {}, filters)]
