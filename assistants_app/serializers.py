"""Model rows → the Assistants API's JSON objects.

Shared by the REST API, the run event stream (whose payloads are these objects) and the chat page.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from .models import (
    Assistant,
    File,
    Message,
    Run,
    RunStep,
    Thread,
    VectorStore,
    VectorStoreFile,
    VectorStoreFileBatch,
)
from .models.files import VECTOR_STORE_FILE_STATUSES
from .models.run import EXPIRING_STATUSES


def ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value is not None else None


# What OpenAI shows for a temperature or top_p that neither the assistant nor the run set. The
# upstream is then sent neither, so a local server keeps its own default (runs/engine.py).
DEFAULT_SAMPLING = 1.0


def sampling(value: float | None) -> float:
    return DEFAULT_SAMPLING if value is None else value


def assistant_obj(a: Assistant) -> dict[str, Any]:
    return {
        "id": a.id,
        "object": "assistant",
        "created_at": ts(a.created_at),
        "name": a.name,
        "description": a.description,
        "model": a.model,
        "instructions": a.instructions,
        "tools": a.tools,
        "tool_resources": a.tool_resources or {},
        "metadata": a.metadata,
        "temperature": sampling(a.temperature),
        "top_p": sampling(a.top_p),
        "response_format": a.response_format if a.response_format is not None else "auto",
    }


def thread_obj(t: Thread) -> dict[str, Any]:
    return {
        "id": t.id,
        "object": "thread",
        "created_at": ts(t.created_at),
        "metadata": t.metadata,
        "tool_resources": t.tool_resources or {},
    }


def message_obj(m: Message) -> dict[str, Any]:
    return {
        "id": m.id,
        "object": "thread.message",
        "created_at": ts(m.created_at),
        "thread_id": m.thread_id,
        "role": m.role,
        "content": m.content,
        "attachments": m.attachments,
        "status": m.status,
        "incomplete_details": m.incomplete_details,
        "completed_at": ts(m.completed_at),
        "incomplete_at": ts(m.incomplete_at),
        "assistant_id": m.assistant_id,
        "run_id": m.run_id,
        "metadata": m.metadata,
    }


def run_obj(r: Run) -> dict[str, Any]:
    return {
        "id": r.id,
        "object": "thread.run",
        "created_at": ts(r.created_at),
        "thread_id": r.thread_id,
        "assistant_id": r.assistant_ref,
        "status": r.status,
        "required_action": r.required_action,
        "last_error": r.last_error,
        "expires_at": ts(r.expires_at) if r.status in EXPIRING_STATUSES else None,
        "started_at": ts(r.started_at),
        "cancelled_at": ts(r.cancelled_at),
        "failed_at": ts(r.failed_at),
        "completed_at": ts(r.completed_at),
        "incomplete_details": r.incomplete_details,
        "model": r.model,
        "instructions": r.instructions,
        "tools": r.tools,
        "metadata": r.metadata,
        "usage": r.usage,
        "temperature": sampling(r.temperature),
        "top_p": sampling(r.top_p),
        "max_prompt_tokens": r.max_prompt_tokens,
        "max_completion_tokens": r.max_completion_tokens,
        "truncation_strategy": r.truncation_strategy or {"type": "auto", "last_messages": None},
        "response_format": r.response_format if r.response_format is not None else "auto",
        "tool_choice": r.tool_choice if r.tool_choice is not None else "auto",
        "parallel_tool_calls": r.parallel_tool_calls,
    }


def step_obj(s: RunStep, *, include_file_search_content: bool = True) -> dict[str, Any]:
    details = s.step_details
    if details.get("type") == "tool_calls":
        details = {
            **details,
            "tool_calls": [
                {k: v for k, v in c.items() if not k.startswith("_")} for c in details.get("tool_calls", [])
            ],
        }
    if not include_file_search_content:
        details = _without_results_content(details)
    return {
        "id": s.id,
        "object": "thread.run.step",
        "created_at": ts(s.created_at),
        "run_id": s.run_id,
        "assistant_id": s.assistant_ref,
        "thread_id": s.thread_id_ref,
        "type": s.type,
        "status": s.status,
        "step_details": details,
        "last_error": s.last_error,
        "expired_at": ts(s.expired_at),
        "cancelled_at": ts(s.cancelled_at),
        "failed_at": ts(s.failed_at),
        "completed_at": ts(s.completed_at),
        "metadata": s.metadata,
        "usage": s.usage,
    }


def _without_results_content(details: dict[str, Any]) -> dict[str, Any]:
    """step_details (or a step delta's) without the text of file_search results."""
    calls = details.get("tool_calls") if details.get("type") == "tool_calls" else None
    if not calls or not any(c.get("type") == "file_search" for c in calls):
        return details
    stripped = []
    for call in calls:
        if call.get("type") == "file_search":
            fs = dict(call.get("file_search") or {})
            if "results" in fs:
                fs["results"] = [{k: v for k, v in r.items() if k != "content"} for r in fs["results"] or []]
            call = {**call, "file_search": fs}
        stripped.append(call)
    return {**details, "tool_calls": stripped}


def without_file_search_content(event: str, data: dict[str, Any]) -> dict[str, Any]:
    """A run event's payload without file_search result content: what a reader gets unless its
    request asked to `include` it. Steps and step deltas alike; other events are returned as is."""
    if event == "thread.run.step.delta":
        delta = data.get("delta") or {}
        details = delta.get("step_details") or {}
        stripped = _without_results_content(details)
        return data if stripped is details else {**data, "delta": {**delta, "step_details": stripped}}
    if event.startswith("thread.run.step."):
        details = data.get("step_details") or {}
        stripped = _without_results_content(details)
        return data if stripped is details else {**data, "step_details": stripped}
    return data


def file_obj(f: File) -> dict[str, Any]:
    return {
        "id": f.id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": ts(f.created_at),
        "expires_at": ts(f.expires_at),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "status_details": None,
    }


# --- vector stores (counts and statuses are computed by services/vector_stores.py) ---------------------
# What OpenAI reports for the auto strategy; rows attached without one (the admin's uploads) use it.
AUTO_CHUNKING = {"type": "static", "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400}}


def file_counts(counts: Mapping[str, int]) -> dict[str, int]:
    c = {s: int(counts.get(s, 0)) for s in VECTOR_STORE_FILE_STATUSES}
    return {**c, "total": sum(c.values())}


def vector_store_obj(
    v: VectorStore, *, status: str, counts: Mapping[str, int], usage_bytes: int
) -> dict[str, Any]:
    return {
        "id": v.id,
        "object": "vector_store",
        "created_at": ts(v.created_at),
        "name": v.name,
        "usage_bytes": usage_bytes,
        "file_counts": file_counts(counts),
        "status": status,
        "expires_after": v.expires_after,
        "expires_at": ts(v.expires_at),
        "last_active_at": ts(v.last_active_at),
        "metadata": v.metadata,
    }


def vector_store_file_obj(f: VectorStoreFile) -> dict[str, Any]:
    return {
        "id": f.file_id,
        "object": "vector_store.file",
        "created_at": ts(f.created_at),
        "vector_store_id": f.vector_store_id,
        "status": f.status,
        "last_error": f.last_error,
        "usage_bytes": f.usage_bytes,
        "attributes": f.attributes or {},
        "chunking_strategy": f.chunking_strategy or AUTO_CHUNKING,
    }


def vector_store_file_batch_obj(
    b: VectorStoreFileBatch, *, status: str, counts: Mapping[str, int]
) -> dict[str, Any]:
    return {
        "id": b.id,
        "object": "vector_store.files_batch",
        "created_at": ts(b.created_at),
        "vector_store_id": b.vector_store_id,
        "status": status,
        "file_counts": file_counts(counts),
    }
