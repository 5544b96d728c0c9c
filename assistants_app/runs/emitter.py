"""Publishing a run's events without blocking the engine, merging text deltas under back-pressure.

To an in-process log (`EventLog.instant`) `emit()` publishes at once: appending to a list costs less
than waking a task. Otherwise `emit()` only appends to a list, and a pump task publishes what has
accumulated; while a publish is in flight (a Redis round trip), new deltas pile up and go out as one
merged delta. When publishing is quick, every delta goes out alone, so merging adds no latency.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from .events import EventLog

log = logging.getLogger(__name__)


def coalesce(items: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    out: list[tuple[str, dict[str, Any]]] = []
    for event, data in items:
        if event == "thread.message.delta" and out and out[-1][0] == event and out[-1][1]["id"] == data["id"]:
            prev = out[-1][1]["delta"]["content"][0]["text"]
            cur = data["delta"]["content"][0]["text"]
            if not prev["annotations"] and not cur["annotations"]:
                merged = {
                    **out[-1][1],
                    "delta": {
                        "content": [
                            {
                                **out[-1][1]["delta"]["content"][0],
                                "text": {"value": prev["value"] + cur["value"], "annotations": []},
                            }
                        ]
                    },
                }
                out[-1] = (event, merged)
                continue
        out.append((event, data))
    return out


class Emitter:
    def __init__(self, event_log: EventLog, run_id: str) -> None:
        self._log = event_log
        self._run_id = run_id
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._closed = False
        self._inline = getattr(event_log, "instant", False) and hasattr(event_log, "publish_many")
        self._task: asyncio.Future[None] | None = (
            None if self._inline else asyncio.ensure_future(self._pump())
        )

    def emit(self, event: str, data: dict[str, Any]) -> None:
        if self._inline:
            try:
                self._log.publish_many(self._run_id, [(event, data)])  # type: ignore[attr-defined]
            except Exception:
                log.exception("publishing %s of run %s failed", event, self._run_id)
            return
        self._pending.append((event, data))
        self._idle.clear()
        self._wake.set()

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._log.apublish(self._run_id, coalesce(batch))
                except Exception:
                    # Readers fall back to the database state; the run itself must go on.
                    log.exception("publishing %d events of run %s failed", len(batch), self._run_id)
            self._idle.set()
            if self._closed:
                return

    async def flush(self) -> None:
        """Wait until everything emitted so far is published (before a status change is published)."""
        if self._pending:
            self._wake.set()
        await self._idle.wait()

    async def close(self) -> None:
        await self.flush()
        self._closed = True
        if self._task is None:
            return
        self._wake.set()
        try:
            await asyncio.wait_for(self._task, 5)
        except (TimeoutError, asyncio.CancelledError):
            self._task.cancel()
