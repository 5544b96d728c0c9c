"""Every /v1 operation, in one list (urls.py routes it, openapi.py describes it)."""

from __future__ import annotations

from . import assistants, files, messages, models, runs, threads, vector_stores
from .routing import Operation

# Order matters where paths overlap: /threads/runs must be matched before /threads/{thread_id}.
OPERATIONS: list[Operation] = [
    *assistants.OPERATIONS,
    *[op for op in threads.OPERATIONS if op.path == "/threads/runs"],
    *[op for op in threads.OPERATIONS if op.path != "/threads/runs"],
    *messages.OPERATIONS,
    *runs.OPERATIONS,
    *files.OPERATIONS,
    *vector_stores.OPERATIONS,
    *models.OPERATIONS,
]
