"""The file_search hosted tool: extraction, chunking, a database lexical index and retrieval.

Public API (names resolve lazily so that importing this package never needs the app registry):
- ingest_vector_store_file(vs_file_id, *, force=False) -> status | None
- claim_and_ingest_pending(worker_id, limit=4) -> int
- search.search(owner_id, vector_store_ids, query, max_num_results=20, score_threshold=0.0, filters=None)
  -> list[SearchResult]   (import it from the submodule: `from ...file_search.search import search`,
  because the package attribute `search` is the submodule)
- parse_chunking_strategy(raw) -> ChunkingParams (raises ChunkingStrategyError),
  chunking_strategy_to_api(params) -> dict
- extract_text(data, filename) -> Extracted (raises ExtractionError)
- delete_file_chunks(vs_file_id=... | file_id=...) -> int
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ExtractionError": "extract",
    "Extracted": "extract",
    "extract_text": "extract",
    "ChunkingParams": "chunk",
    "ChunkingStrategyError": "chunk",
    "TextChunk": "chunk",
    "chunk_text": "chunk",
    "chunking_strategy_to_api": "chunk",
    "parse_chunking_strategy": "chunk",
    "delete_file_chunks": "index",
    "rebuild_lexical_index": "lexical",
    "claim_and_ingest_pending": "ingest",
    "ingest_vector_store_file": "ingest",
    "SearchError": "search",
    "SearchResult": "search",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
