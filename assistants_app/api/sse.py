"""Server-sent events for `stream: true` runs.

Every event is framed as `event: <name>` + `data: <json>` (the SDK leaves `.event` None without the
`event:` line), the stream ends after `thread.run.requires_action` or the terminal run event with
`event: done` / `data: [DONE]`, and a failure inside the stream becomes an `event: error` carrying an
error object instead of a dropped connection.

The response only *reads* the run's event log (runs.stream.follow). The run executes on the executor
whatever happens to this connection: a client that disconnects stops its reader, never the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from typing import Any

from django.http import StreamingHttpResponse

from assistants_app.errors import ErrorObject
from assistants_app.runs.stream import follow
from assistants_app.serializers import without_file_search_content

log = logging.getLogger(__name__)

# A comment line now and then keeps proxies and load balancers from closing a quiet stream
# (a run waiting in the queue, or a slow first token).
KEEPALIVE_SECONDS = 15.0
DONE = b"event: done\ndata: [DONE]\n\n"


def frame(event: str, data: dict[str, Any]) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


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
    for name, data in prelude:
        yield frame(name, data)
    events = follow(run_id, after).__aiter__()
    pending: asyncio.Future[Any] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(events.__anext__())
            # Wait without cancelling the read: cancelling it would close the follower.
            done, _ = await asyncio.wait({pending}, timeout=KEEPALIVE_SECONDS)
            if not done:
                yield b": keep-alive\n\n"
                continue
            try:
                ev = pending.result()
            except StopAsyncIteration:
                break
            finally:
                pending = None
            data = ev.data if include_file_search_content else without_file_search_content(ev.event, ev.data)
            yield frame(ev.event, data)
    except asyncio.CancelledError:
        raise  # the client went away; the run goes on
    except Exception:
        log.exception("streaming run %s failed", run_id)
        yield error_frame("The server had an error while streaming this run; the run itself continues.")
    finally:
        if pending is not None:
            pending.cancel()
            with contextlib.suppress(BaseException):
                await pending
        with contextlib.suppress(BaseException):
            await events.aclose()  # type: ignore[attr-defined]
    yield DONE


def sse_response(body: AsyncIterator[bytes]) -> StreamingHttpResponse:
    response = StreamingHttpResponse(body, content_type="text/event-stream; charset=utf-8")
    response["Cache-Control"] = "no-cache"
    response["X-Accel-Buffering"] = "no"  # nginx: do not buffer the stream
    return response
