"""Run events → fragments for the chat page's websocket (every fragment is an hx-swap-oob swap).

Whole elements (bubbles, tool steps, run controls) come from the templates' partials. A reply's
text deltas are buffered and rendered as Markdown by `flush()`, which the consumer calls at a
bounded rate (CHAT_RENDER_INTERVAL_MS): blocks that are final are appended once, the block still
growing is replaced. When the message completes, its final render (the history view's) replaces
the whole bubble. Rendering is pure: no database access.
"""

from __future__ import annotations

from typing import Any

from django.template.loader import render_to_string
from django.utils.html import escape

from assistants_app.models.run import TERMINAL_STATUSES, RunStatus

from .fragments import (
    FRAGMENTS,
    Bubble,
    Delta,
    Op,
    _call_view,
    bubble,
    ending_notice,
    render_message,
    render_output,
    render_step,
    run_controls,
    run_notice,
    upsert,
)
from .rendering import LiveMarkdown


class EventRenderer:
    """Turns one run's events into ops. One per socket: it remembers which tool calls it has drawn."""

    def __init__(self, assistant_name: str) -> None:
        self.assistant_name = assistant_name
        self._calls: set[tuple[str, int]] = set()
        self._live: dict[str, LiveMarkdown] = {}
        self._dirty: list[str] = []

    def render(self, event: str, data: dict[str, Any]) -> list[Op]:
        kind = event.removeprefix("thread.")
        if kind == "message.delta":
            # Buffered: flush() renders what arrived, at the rate the consumer calls it.
            live = self._live.setdefault(data["id"], LiveMarkdown())
            for part in (data.get("delta") or {}).get("content") or []:
                if part.get("type") == "text" and part.get("text"):
                    live.append(part["text"].get("value", ""))
            if data["id"] not in self._dirty:
                self._dirty.append(data["id"])
            return []
        if kind.startswith("run.step."):
            return self._step(kind.removeprefix("run.step."), data)
        if kind.startswith("message."):
            return self._message(kind.removeprefix("message."), data)
        if kind.startswith("run."):
            return self._run(kind.removeprefix("run."), data)
        return []

    def _message(self, kind: str, data: dict[str, Any]) -> list[Op]:
        if data.get("role") != "assistant":
            return []
        if kind == "created":
            self._live[data["id"]] = LiveMarkdown()
            b = Bubble(id=data["id"], role="assistant", status="in_progress", streaming=True)
            b.run_id = data.get("run_id") or ""
            return [upsert(render_message(b, self.assistant_name))]
        if kind in ("completed", "incomplete"):
            self.finish(data["id"])
            return [upsert(render_message(bubble(data), self.assistant_name))]
        return []

    @property
    def pending(self) -> bool:
        return bool(self._dirty)

    def finish(self, message_id: str) -> None:
        """The message is final: its last render is the history view's, not a partial one."""
        self._live.pop(message_id, None)
        if message_id in self._dirty:
            self._dirty.remove(message_id)

    def is_live(self, message_id: str) -> bool:
        return message_id in self._live

    def take_dirty(self) -> list[str]:
        """The replies that grew since the last call (their partial render is due)."""
        ids, self._dirty = self._dirty, []
        return ids

    def partials(self, message_ids: list[str]) -> list[tuple[str, list[Op]]]:
        """The partial renders of these replies. Pure, so the consumer can run it off its event loop
        when it is not `cheap` (a long code block costs milliseconds to highlight); one call at a
        time per renderer."""
        out: list[tuple[str, list[Op]]] = []
        for msg_id in message_ids:
            live = self._live.get(msg_id)
            if live is None:
                continue
            done, tail = live.render()
            ops: list[Op] = []
            if done:
                ops.append(f'<div hx-swap-oob="beforeend:#m-{msg_id}-done">{done}</div>')
            ops.append(f'<div hx-swap-oob="innerHTML:#m-{msg_id}-tail">{tail}</div>')
            out.append((msg_id, ops))
        return out

    def cheap(self, message_ids: list[str]) -> bool:
        """Whether the partial renders of these replies are cheap enough for the event loop."""
        return all(live.cheap() for msg_id in message_ids if (live := self._live.get(msg_id)) is not None)

    def flush(self) -> list[Op]:
        """The partial renders of the replies that grew since the last flush."""
        return [op for _, ops in self.partials(self.take_dirty()) for op in ops]

    def _step(self, kind: str, data: dict[str, Any]) -> list[Op]:
        if data.get("type", "tool_calls") != "tool_calls" and kind != "delta":
            return []
        if kind == "created":
            return [upsert(render_step(data))]
        if kind == "delta":
            return self._step_delta(data)
        if kind in ("completed", "failed", "cancelled", "expired"):
            return [upsert(render_step(data))]
        return []

    def _step_delta(self, data: dict[str, Any]) -> list[Op]:
        step_id = data["id"]
        details = (data.get("delta") or {}).get("step_details") or {}
        ops: list[Op] = []
        for call in details.get("tool_calls") or []:
            index = int(call.get("index", 0))
            base = f"c-{step_id}-{index}"
            if (step_id, index) not in self._calls:
                self._calls.add((step_id, index))
                view = _call_view(call, index, final=False)
                view["input"] = ""  # appended below, like any later fragment
                html = render_to_string(f"{FRAGMENTS}#tool_call", {"call": view, "step": {"id": step_id}})
                ops.append(upsert(html, f"s-{step_id}-calls"))
            kind = str(call.get("type", ""))
            body: dict[str, Any] = call.get(kind) or {}
            piece = body.get("arguments") if kind == "function" else body.get("input")
            if piece:
                ops.append(Delta(f"{base}-in", piece))
            if kind == "function" and body.get("output") is not None:
                ops.append(upsert(f'<pre class="tool-text">{escape(body["output"])}</pre>', f"{base}-out"))
            if kind == "code_interpreter":
                for out in body.get("outputs") or []:
                    ops.append(upsert(render_output(out), f"{base}-out"))
        return ops

    def _run(self, kind: str, data: dict[str, Any]) -> list[Op]:
        run_id = data.get("id", "")
        if kind in ("created", RunStatus.QUEUED, RunStatus.IN_PROGRESS):
            ops: list[Op] = [run_controls(run_id)]
            if kind == "created":
                ops.append(run_notice())
            return ops
        if kind == RunStatus.CANCELLING:
            return [run_controls(run_id, "Stopping…")]
        if kind == RunStatus.REQUIRES_ACTION:
            names = [
                c.get("function", {}).get("name", "")
                for c in ((data.get("required_action") or {}).get("submit_tool_outputs") or {}).get(
                    "tool_calls", []
                )
            ]
            waiting = f"The assistant is waiting for a function result ({', '.join(names)}) that the chat page can't provide."
            return [run_controls(run_id, "Waiting for a tool result…"), run_notice(waiting)]
        if kind in TERMINAL_STATUSES:
            notice = ending_notice({**data, "status": kind})
            return [run_controls(None), run_notice(notice)]
        return []
