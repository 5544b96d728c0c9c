"""Reading a streamed Chat Completion: SSE framing, then each chunk's JSON into StreamEvents.

The backend reads the upstream's bytes itself instead of iterating the SDK's `AsyncStream`, which
builds a pydantic `ChatCompletionChunk` (several nested models) per token: that was about half of
the server's CPU per streamed token. Here a chunk costs one `orjson.loads` and a few dict lookups,
and the shape checks the engine relies on are made on the plain JSON.
"""

from __future__ import annotations

from typing import Any

import orjson

from .base import BackendError, Finish, FinishReason, StreamEvent, TextDelta, ToolCallDelta, Usage

_FINISH_REASONS: dict[str, FinishReason] = {
    "stop": "stop",
    "length": "length",
    "tool_calls": "tool_calls",
    "content_filter": "content_filter",
    "function_call": "tool_calls",  # the pre-tools name some servers still send
}
_MAX_ERROR_TEXT = 500


def malformed(what: str) -> BackendError:
    return BackendError("server_error", f"The upstream model server sent a malformed stream ({what}).")


def upstream_error(message: str) -> BackendError:
    return BackendError("server_error", f"The upstream model server reported an error mid-stream: {message}")


# --------------------------------------------------------------------------------------------------
# SSE framing (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation)


class SSEDecoder:
    """Incremental SSE parser: `feed(bytes)` returns the events completed by those bytes, as
    (event name or None, data) pairs; data is the event's `data:` lines joined by "\\n", as bytes.

    Lines may end in LF, CRLF or CR, also when a CRLF is split across two reads. Comments
    (keep-alives such as ": ping"), `id:`, `retry:` and unknown fields are skipped. An event is only
    complete at its blank line, so an unterminated one at the end of the body is dropped (as the
    spec, and the SDK, do).
    """

    __slots__ = ("_data", "_event", "_partial", "_skip_lf")

    def __init__(self) -> None:
        self._partial = b""  # an unterminated line from the previous read
        self._skip_lf = False  # the previous read ended in CR: a leading LF belongs to that CRLF
        self._data: list[bytes] = []
        self._event: str | None = None

    def feed(self, chunk: bytes) -> list[tuple[str | None, bytes]]:
        if self._skip_lf:
            self._skip_lf = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        if b"\r" in chunk:
            self._skip_lf = chunk[-1:] == b"\r"
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._partial:
            chunk = self._partial + chunk
        lines = chunk.split(b"\n")
        self._partial = lines.pop()
        events: list[tuple[str | None, bytes]] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    events.append((self._event, data[0] if len(data) == 1 else b"\n".join(data)))
                    data.clear()
                self._event = None
            elif line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b":"):
                continue
            else:
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"event":
                    self._event = value.decode("utf-8", "replace")
                elif name == b"data":  # a bare "data" line: an empty data line
                    data.append(value)
        return events


# --------------------------------------------------------------------------------------------------
# Chunk JSON


def decode_data(event: str | None, data: bytes) -> Any:
    """One event's JSON, or BackendError for invalid JSON and for an error the upstream sent instead
    of a chunk (`{"error": {...}}`, optionally as `event: error`)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as err:
        if event == "error":
            raise upstream_error(data.decode("utf-8", "replace")[:_MAX_ERROR_TEXT]) from err
        raise BackendError(
            "server_error", f"The upstream model server sent a malformed stream (invalid JSON: {err})."
        ) from err
    if isinstance(obj, dict) and obj.get("error"):
        error = obj["error"]
        message = error.get("message") if isinstance(error, dict) else error
        if not isinstance(message, str) or not message:
            message = "An error occurred during streaming"
        raise upstream_error(message[:_MAX_ERROR_TEXT])
    if event == "error":
        raise upstream_error(data.decode("utf-8", "replace")[:_MAX_ERROR_TEXT])
    return obj


class ChunkMapper:
    """Turns ChatCompletionChunk JSON objects into StreamEvents, checking their shape on the way.

    Usage and Finish are held back and emitted by `tail()`, so callers always see Finish last and
    exactly once, whatever order (or repetition) the server used.
    """

    __slots__ = ("_index_by_id", "_last_index", "finish", "saw_tool_calls", "usage")

    def __init__(self) -> None:
        self.finish: FinishReason | None = None
        self.usage: Usage | None = None
        self.saw_tool_calls = False
        self._index_by_id: dict[str, int] = {}
        self._last_index = 0

    def feed(self, chunk: Any) -> list[StreamEvent]:
        if not isinstance(chunk, dict):
            raise malformed("a chunk that is not a JSON object")
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise malformed("a chunk without a choices list")
        usage = chunk.get("usage")
        if usage is not None:
            self._usage(usage)
        if not choices:
            return []
        choice = choices[0]  # we never ask for n > 1
        if not isinstance(choice, dict):
            raise malformed("a choice that is not an object")
        delta = choice.get("delta")
        events = self._delta(delta) if delta is not None else []
        reason = choice.get("finish_reason")
        if reason is not None:
            if not isinstance(reason, str):
                raise malformed("a non-string finish_reason")
            # Unknown reasons (e.g. "eos" from some local servers) mean the model stopped.
            self.finish = _FINISH_REASONS.get(reason, "stop")
        return events

    def _usage(self, usage: Any) -> None:
        if not isinstance(usage, dict):
            raise malformed("usage that is not an object")
        prompt, completion = usage.get("prompt_tokens"), usage.get("completion_tokens")
        if not isinstance(prompt, int) or not isinstance(completion, int):
            raise malformed("usage without integer token counts")
        self.usage = Usage(prompt, completion)

    def _delta(self, delta: Any) -> list[StreamEvent]:
        if not isinstance(delta, dict):
            raise malformed("a delta that is not an object")
        events: list[StreamEvent] = []
        content = delta.get("content")
        if content is not None and not isinstance(content, str):
            raise malformed("non-string content")
        if content:
            events.append(TextDelta(content))
        calls = delta.get("tool_calls")
        if calls is None:
            return events
        if not isinstance(calls, list):
            raise malformed("tool_calls that is not a list")
        for call in calls:
            if not isinstance(call, dict):
                raise malformed("a tool call that is not an object")
            fn = call.get("function")
            if fn is None:
                fn = {}
            elif not isinstance(fn, dict):
                raise malformed("a tool call whose function is not an object")
            call_id, name, arguments = call.get("id"), fn.get("name"), fn.get("arguments")
            for value in (call_id, name, arguments):
                if value is not None and not isinstance(value, str):
                    raise malformed("a tool call with non-string fields")
            events.append(
                ToolCallDelta(self._index(call.get("index"), call_id), call_id or None, name, arguments)
            )
            self.saw_tool_calls = True
        return events

    def _index(self, index: Any, call_id: str | None) -> int:
        if isinstance(index, int) and not isinstance(index, bool):
            self._last_index = index
        elif index is not None:
            raise malformed("a tool call with a non-integer index")
        # Some servers omit the index: a new id starts a new call, no id continues the last one.
        elif call_id and call_id not in self._index_by_id:
            self._last_index = len(self._index_by_id)
        elif call_id:
            self._last_index = self._index_by_id[call_id]
        if call_id:
            self._index_by_id.setdefault(call_id, self._last_index)
        return self._last_index

    def tail(self, reason: FinishReason) -> list[StreamEvent]:
        # Some local servers say "stop" even when the answer is tool calls; the engine keys on this.
        if reason == "stop" and self.saw_tool_calls:
            reason = "tool_calls"
        return [*([self.usage] if self.usage else []), Finish(reason)]


def merge_text(events: list[StreamEvent]) -> list[StreamEvent]:
    """`events` with each run of consecutive TextDeltas joined into one: what one read brought in
    is relayed as one delta, not one per chunk."""
    if len(events) < 2:
        return events
    out: list[StreamEvent] = []
    for ev in events:
        if isinstance(ev, TextDelta) and out and isinstance(out[-1], TextDelta):
            out[-1] = TextDelta(out[-1].text + ev.text)
        else:
            out.append(ev)
    return out
