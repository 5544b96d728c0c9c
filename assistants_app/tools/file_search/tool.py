"""File search as a hosted tool: the model asks a query, the engine searches the run's vector stores.

The stores are the assistant's (`tool_resources.file_search`) and the thread's (including the one
made for message attachments), as the Assistants API defines. Each store is searched on behalf
of its legitimate owner only: the thread's stores as the thread's owner, the assistant's as the
assistant's owner — so retrieval never reaches another user's files.

Results go back to the model numbered with citation markers (【3†guide.pdf】); the markers the
answer actually uses become `file_citation` annotations whose indexes point into its text.
"""

from __future__ import annotations

import json
import time
from typing import Any

from assistants_app.asyncdb import db
from assistants_app.models import Run, Thread, VectorStore, VectorStoreFile
from assistants_app.tools import hosted

from .search import SearchError, search

DEFAULT_MAX_RESULTS = 10
# How long a run waits for files attached moments ago to finish indexing before searching.
INDEXING_WAIT_SECONDS = 30.0

DESCRIPTION = (
    "Search the files the user and the assistant provided. Returns numbered passages, each "
    "starting with a marker like 【0†name】. When you use a passage, cite it by copying its marker "
    "exactly into your answer right after the statement it supports."
)


class FileSearch:
    type = "file_search"

    def function_spec(self, run: Run, tool: dict[str, Any]) -> dict[str, Any]:
        return {
            "name": "file_search",
            "description": DESCRIPTION,
            "parameters": {
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to look for, in a few words."}
                },
                "required": ["query"],
            },
        }

    def initial_call(self, call_id: str) -> dict[str, Any]:
        return {"id": call_id, "type": "file_search", "file_search": {}}

    def input_delta(self, arguments_so_far: str, fragment: str) -> dict[str, Any] | None:
        return None

    async def execute(self, ctx: hosted.ToolContext, arguments: str) -> hosted.ToolOutcome:
        query = parse_query(arguments)
        config = next(
            (t.get("file_search") or {} for t in ctx.run.tools or [] if t.get("type") == "file_search"), {}
        )
        max_results = int(config.get("max_num_results") or DEFAULT_MAX_RESULTS)
        threshold = float((config.get("ranking_options") or {}).get("score_threshold") or 0.0)
        ranking = {"ranker": "default_2024_08_21", "score_threshold": threshold}
        try:
            results = await db(run_search)(ctx.run, query, max_results, threshold)
        except SearchError as exc:
            results, error = [], exc.message
        else:
            error = ""
        step_results = [
            {
                "file_id": r.file_id,
                "file_name": r.filename,
                "score": round(r.score, 6),
                "content": [{"type": "text", "text": r.text}],
            }
            for r in results
        ]
        citations: list[hosted.Citation] = []
        passages = []
        for i, r in enumerate(results):
            marker = f"【{i}†{r.filename}】"
            citations.append({"marker": marker, "file_id": r.file_id, "quote": r.text[:200]})
            passages.append(f"{marker}\n{r.text}")
        if error:
            output = f"File search failed: {error}"
        elif not passages:
            output = f"No passages matched {query!r}."
        else:
            output = "\n\n".join(passages)
        ctx.emit_delta(
            {"type": "file_search", "file_search": {"ranking_options": ranking, "results": step_results}}
        )
        return hosted.ToolOutcome(
            output=output,
            tool_call={
                "type": "file_search",
                "file_search": {"ranking_options": ranking, "results": step_results},
            },
            citations=citations,
        )


def parse_query(arguments: str) -> str:
    try:
        parsed = json.loads(arguments)
    except json.JSONDecodeError:
        return arguments.strip()
    if isinstance(parsed, dict):
        q = parsed.get("query") or parsed.get("queries")
        if isinstance(q, list):
            return " ".join(str(x) for x in q)
        if isinstance(q, str):
            return q
    return str(parsed)


def stores_by_owner(run: Run) -> dict[int, list[str]]:
    """The run's vector stores grouped by the owner they may be searched as."""
    thread = Thread.objects.select_related("owner").get(id=run.thread_id)
    grouped: dict[int, list[str]] = {}
    thread_ids = (thread.tool_resources or {}).get("file_search", {}).get("vector_store_ids", [])
    for vs_id in (
        VectorStore.objects.live().filter(id__in=thread_ids, owner=thread.owner).values_list("id", flat=True)
    ):
        grouped.setdefault(thread.owner_id, []).append(vs_id)
    assistant = run.assistant
    assistant_ids = (run.tool_resources or {}).get("file_search", {}).get("vector_store_ids", [])
    if assistant is not None and assistant_ids:
        stores = VectorStore.objects.live().filter(id__in=assistant_ids)
        if assistant.owner_id is not None:
            stores = stores.filter(owner_id=assistant.owner_id)
        else:
            # A staff-made assistant (the chat product's): its stores belong to staff members.
            stores = stores.filter(owner__is_staff=True)
        for vs_id, owner_id in stores.values_list("id", "owner_id"):
            grouped.setdefault(owner_id, []).append(vs_id)
    return grouped


def run_search(run: Run, query: str, max_results: int, threshold: float) -> list[Any]:
    grouped = stores_by_owner(run)
    all_ids = [vs for ids in grouped.values() for vs in ids]
    # A run's search keeps its stores alive, as the API's expires_after defines.
    VectorStore.objects.touch(all_ids)
    _wait_for_indexing(all_ids)
    results = []
    for owner_id, ids in grouped.items():
        results += search(owner_id, ids, query, max_num_results=max_results, score_threshold=threshold)
    results.sort(key=lambda r: r.score, reverse=True)
    return results[:max_results]


def _wait_for_indexing(store_ids: list[str]) -> None:
    deadline = time.monotonic() + INDEXING_WAIT_SECONDS
    while (
        store_ids
        and time.monotonic() < deadline
        and VectorStoreFile.objects.filter(
            vector_store_id__in=store_ids, status=VectorStoreFile.Status.IN_PROGRESS
        ).exists()
    ):
        time.sleep(0.2)


hosted.register(FileSearch())
