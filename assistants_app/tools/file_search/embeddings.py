"""Optional dense embeddings through any OpenAI-compatible /embeddings endpoint.

Configured by EMBEDDINGS_BASE_URL (+ EMBEDDINGS_API_KEY, EMBEDDINGS_MODEL). When it is not set,
file search is lexical only: nothing here is called and no model is ever downloaded.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

import numpy as np
from django.conf import settings

BATCH_SIZE = 64


def embeddings_configured() -> bool:
    return bool(settings.EMBEDDINGS_BASE_URL)


def embeddings_model() -> str:
    return str(settings.EMBEDDINGS_MODEL)


@lru_cache(maxsize=4)
def _client(base_url: str, api_key: str) -> Any:
    from openai import OpenAI

    timeout = float(settings.EMBEDDINGS_TIMEOUT)
    return OpenAI(base_url=base_url, api_key=api_key or "unused", timeout=timeout, max_retries=2)


def embed_texts(texts: list[str], on_batch: Callable[[], None] | None = None) -> np.ndarray:
    """L2-normalized float32 matrix, one row per text (cosine similarity is then a dot product)."""
    client = _client(settings.EMBEDDINGS_BASE_URL, settings.EMBEDDINGS_API_KEY)
    rows: list[list[float]] = []
    for i in range(0, len(texts), BATCH_SIZE):
        batch = texts[i : i + BATCH_SIZE]
        response = client.embeddings.create(model=embeddings_model(), input=batch)
        ordered = sorted(response.data, key=lambda d: d.index)
        if len(ordered) != len(batch):
            raise RuntimeError(f"embeddings endpoint returned {len(ordered)} vectors for {len(batch)} inputs")
        rows.extend(d.embedding for d in ordered)
        if on_batch is not None:
            on_batch()
    matrix = np.asarray(rows, dtype=np.float32)
    if matrix.size == 0:
        return matrix.reshape(0, 0)
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def from_bytes(blob: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype="<f4")
