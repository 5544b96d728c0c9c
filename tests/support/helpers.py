"""Small helpers shared by test modules."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx2
from asgiref.sync import async_to_sync

from assistants_app.models import Run
from assistants_app.runs.events import STREAM_END_EVENTS, TERMINAL_RUN_EVENTS, RunEvent
from assistants_app.runs.stream import follow


def collect_events(
    run_id: str, after: str = "", *, until=STREAM_END_EVENTS, timeout: float = 15
) -> list[RunEvent]:
    async def go() -> list[RunEvent]:
        out: list[RunEvent] = []

        async def read() -> None:
            async for ev in follow(run_id, after, stop_on=until, check_every=0.5):
                out.append(ev)

        await asyncio.wait_for(read(), timeout)
        return out

    return async_to_sync(go)()


def wait_run(
    run_id: str,
    statuses: tuple[str, ...] = (
        "completed",
        "failed",
        "cancelled",
        "expired",
        "incomplete",
        "requires_action",
    ),
    timeout: float = 15,
) -> Run:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = Run.objects.get(id=run_id)
        if run.status in statuses:
            return run
        time.sleep(0.02)
    raise AssertionError(f"run {run_id} still {Run.objects.get(id=run_id).status} after {timeout}s")


def ingest_now(vs_file_id: int, timeout: float = 30) -> str | None:
    """Ingest a vector store file in this thread, or, when a running executor's ingestion loop
    claimed it first, wait for that one to finish it: the file's final status."""
    from assistants_app.tools.file_search.ingest import ingest_vector_store_file

    deadline = time.monotonic() + timeout
    status = ingest_vector_store_file(vs_file_id)
    while status == "in_progress" and time.monotonic() < deadline:
        time.sleep(0.02)
        status = ingest_vector_store_file(vs_file_id)
    return status


def text_of(events: list[RunEvent]) -> str:
    return "".join(
        part["text"]["value"]
        for ev in events
        if ev.event == "thread.message.delta"
        for part in ev.data["delta"]["content"]
        if part["type"] == "text"
    )


def names(events: list[RunEvent]) -> list[str]:
    return [ev.event for ev in events]


def terminal(events: list[RunEvent]) -> Any:
    assert events and events[-1].event in TERMINAL_RUN_EVENTS | {"thread.run.requires_action"}, names(events)
    return events[-1].data


def iter_sse(response: httpx2.Response) -> Iterator[tuple[str | None, str]]:
    """(event, data) pairs of a raw SSE response, for framing checks the SDK would hide."""
    event: str | None = None
    data: list[str] = []
    for line in response.iter_lines():
        if line == "":
            if data or event:
                yield event, "\n".join(data)
            event, data = None, []
        elif line.startswith("event:"):
            event = line[6:].strip()
        elif line.startswith("data:"):
            data.append(line[5:].lstrip())
