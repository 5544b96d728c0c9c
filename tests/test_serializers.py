"""One "strip file-search content from steps" (objects.without_file_search_content) for the REST
objects, the SSE stream and the chat page.

Before it, objects.py and api/sse.py each had a copy, and the stream's left step deltas alone: a
`stream: true` run sent the text of every file_search result in `thread.run.step.delta` even when
the request had not asked to `include` it.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from assistants_app.api import sse
from assistants_app.models import RunStep
from assistants_app.runs.events import RunEvent
from assistants_app.serializers import step_obj, without_file_search_content

RESULTS = [
    {"file_id": "file-1", "file_name": "a.txt", "score": 0.5, "content": [{"type": "text", "text": "secret"}]}
]
CALL = {"id": "call_1", "type": "file_search", "file_search": {"ranking_options": {}, "results": RESULTS}}
DELTA = {
    "id": "step_1",
    "object": "thread.run.step.delta",
    "delta": {"step_details": {"type": "tool_calls", "tool_calls": [{"index": 0, **CALL}]}},
}
STEP = {
    "id": "step_1",
    "object": "thread.run.step",
    "step_details": {"type": "tool_calls", "tool_calls": [CALL]},
}


def _frames(include: bool, monkeypatch: Any) -> list[dict[str, Any]]:
    async def follow_batches(run_id: str, after: str = "", **kwargs: Any):
        yield [RunEvent("1", "thread.run.step.delta", DELTA)]
        yield [
            RunEvent("2", "thread.run.step.completed", STEP),
            RunEvent("3", "thread.run.completed", {"id": run_id, "status": "completed"}),
        ]

    monkeypatch.setattr(sse, "follow_batches", follow_batches)

    async def collect() -> list[bytes]:
        return [c async for c in sse.run_events("run_1", include_file_search_content=include)]

    frames = b"".join(asyncio.run(collect())).split(b"\n\n")
    return [json.loads(f.split(b"data: ", 1)[1]) for f in frames if f.startswith(b"event: thread.")]


def test_the_stream_strips_deltas_too_unless_included(monkeypatch) -> None:
    delta, step, _ = _frames(False, monkeypatch)
    assert "content" not in delta["delta"]["step_details"]["tool_calls"][0]["file_search"]["results"][0]
    assert "content" not in step["step_details"]["tool_calls"][0]["file_search"]["results"][0]
    delta, step, _ = _frames(True, monkeypatch)
    assert delta["delta"]["step_details"]["tool_calls"][0]["file_search"]["results"] == RESULTS
    assert step["step_details"]["tool_calls"][0]["file_search"]["results"] == RESULTS


def test_rest_objects_and_events_are_stripped_the_same_way() -> None:
    row = RunStep(id="step_1", run_id="run_1", thread_id_ref="t", assistant_ref="a", type="tool_calls")
    row.step_details = STEP["step_details"]
    assert (
        step_obj(row, include_file_search_content=False)["step_details"]
        == (without_file_search_content("thread.run.step.completed", STEP)["step_details"])
    )
    message = {"id": "msg_1", "content": [{"type": "text", "text": {"value": "content", "annotations": []}}]}
    assert without_file_search_content("thread.message.completed", message) is message
