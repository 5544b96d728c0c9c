"""Server-sent events for `stream: true` runs.

Every event is framed as `event: <name>` + `data: <json>` (the SDK leaves `.event` None without the
`event:` line), the stream ends after `thread.run.requires_action` or the terminal run event with
`event: done` / `data: [DONE]`, and a failure inside the stream becomes an `event: error` carrying an
error object instead of a dropped connection.

The response only *reads* the run's event log (runs.stream.follow). The run executes on the executor
whatever happens to this connection: a client that disconnects stops its reader, never the run.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

from django.http import StreamingHttpResponse

from assistants_app.errors import ErrorObject
from assistants_app.runs.events import RunEvent, dumps
from assistants_app.runs.stream import follow_batches
from assistants_app.serializers import without_file_search_content

log = logging.getLogger(__name__)

# A comment line now and then keeps proxies and load balancers from closing a quiet stream
# (a run waiting in the queue, or a slow first token).
KEEPALIVE_SECONDS = 15.0
# How often the follower looks at a silent run (an idle tick each time: see follow_batches).
CHECK_EVERY = 2.0
DONE = b"event: done\ndata: [DONE]\n\n"
KEEPALIVE = b": keep-alive\n\n"
_EVENT_LINES: dict[str, bytes] = {}


def _event_line(event: str) -> bytes:
    line = _EVENT_LINES.get(event)
    if line is None:
        line = _EVENT_LINES[event] = f"event: {event}\ndata: ".encode()
    return line


def frame(event: str, data: dict[str, Any]) -> bytes:
    return _event_line(event) + dumps(data) + b"\n\n"


def _frame_event(ev: RunEvent, include_file_search_content: bool) -> bytes:
    if not include_file_search_content:
        data = ev.data if ev.event.startswith("thread.run.step.") else None
        if data is not None:
            stripped = without_file_search_content(ev.event, data)
            if stripped is not data:
                return frame(ev.event, stripped)
    # The event's JSON as serialized once for every reader (RunEvent.json).
    return _event_line(ev.event) + ev.json() + b"\n\n"


def error_frame(message: str, code: str = "server_error") -> bytes:
    error: ErrorObject = {"message": message, "type": "server_error", "param": None, "code": code}
    return frame("error", {"error": error})


async def run_events(
    run_id: str,
    after: str = "",
    *,
    prelude: Iterable[tuple[str, dict[str, Any]]] = (),
    include_file_search_content: bool = False,
) -> AsyncIterator[bytes]:
    """The SSE body. Every event ready at once goes out as one chunk: one write through Django and
    daphne for several events when the server is busy, one per event when it is not."""
    for name, data in prelude:
        yield frame(name, data)
    batches = follow_batches(run_id, after, check_every=CHECK_EVERY, idle_ticks=True)
    last_write = time.monotonic()
    try:
        async for batch in batches:
            if not batch:
                if time.monotonic() - last_write >= KEEPALIVE_SECONDS - CHECK_EVERY / 2:
                    last_write = time.monotonic()
                    yield KEEPALIVE
                continue
            if len(batch) == 1:
                chunk = _frame_event(batch[0], include_file_search_content)
            else:
                chunk = b"".join(_frame_event(ev, include_file_search_content) for ev in batch)
            last_write = time.monotonic()
            yield chunk
    except Exception:
        log.exception("streaming run %s failed", run_id)
        yield error_frame("The server had an error while streaming this run; the run itself continues.")
    finally:
        with contextlib.suppress(Exception):
            await batches.aclose()  # type: ignore[attr-defined]
    yield DONE


def sse_response(body: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response
