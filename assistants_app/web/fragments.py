"""Run events → HTML fragments for the htmx ws extension (every fragment is an hx-swap-oob swap).

Whole elements (bubbles, tool steps, run controls) are rendered from the templates' partials; a
text delta, the hot path, is one escaped string appended to its bubble. Rendering is pure: no
database access, so the consumer can call it on its event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape

from assistants_app.models import Message, RunStep
from assistants_app.models.run import TERMINAL_STATUSES, RunStatus
from assistants_app.serializers import step_obj
from assistants_app.services.chat import RETRYABLE_STATUSES

from .rendering import content_text, markdown_to_html

FRAGMENTS = "chat/fragments.html"


@dataclass(frozen=True, slots=True)
class Delta:
    """Text to append to element `target`; consecutive deltas for one target are merged."""

    target: str
    text: str


Op = str | Delta


@dataclass
class Bubble:
    id: str
    role: str
    status: str
    text: str = ""
    html: str = ""
    files: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    streaming: bool = False
    images: list[str] = field(default_factory=list)  # file ids of images the tools made
    citations: list[dict[str, str]] = field(default_factory=list)  # {"name", "quote"}


_INCOMPLETE_NOTES = {
    "run_cancelled": "Stopped.",
    "run_failed": "The reply was interrupted by an error.",
    "run_expired": "The reply took too long and was cut off.",
    "max_tokens": "The reply was cut off at the length limit.",
    "content_filter": "The reply was cut off by a content filter.",
}


def _annotations(content: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        a for p in content if p.get("type") == "text" for a in (p.get("text") or {}).get("annotations") or []
    ]


def _link_files(content: list[dict[str, Any]], text: str) -> str:
    """Point `sandbox:/mnt/data/…` references at the owner-checked download of the file."""
    for a in _annotations(content):
        if a.get("type") == "file_path" and a.get("text"):
            text = text.replace(a["text"], reverse("chat_file", args=[a["file_path"]["file_id"]]))
    return text


def _citations(content: list[dict[str, Any]]) -> list[dict[str, str]]:
    """One entry per cited passage: the file's name (from the marker 【n†name】) and the quote."""
    seen: set[str] = set()
    out = []
    for a in _annotations(content):
        if a.get("type") != "file_citation" or a.get("text") in seen:
            continue
        seen.add(a.get("text", ""))
        marker = a.get("text", "")
        name = (
            marker.split("†", 1)[1].rstrip("】") if "†" in marker else a["file_citation"].get("file_id", "")
        )
        out.append({"marker": marker, "name": name, "quote": a["file_citation"].get("quote", "")})
    return out


def bubble(m: Message | dict[str, Any]) -> Bubble:
    """The view of a message, from a row or from an API message object (a run event's payload)."""
    if isinstance(m, Message):
        msg_id, role, status, content = m.id, m.role, m.status, m.content
        details, files = m.incomplete_details, getattr(m, "files", [])
    else:
        msg_id, role, status, content = m["id"], m["role"], m["status"], m.get("content") or []
        details, files = m.get("incomplete_details"), []
    text = content_text(content)
    b = Bubble(id=msg_id, role=role, status=status, files=list(files))
    if role == "user":
        b.text = text
    else:
        b.html = markdown_to_html(_link_files(content, text))
        b.images = [p["image_file"]["file_id"] for p in content if p.get("type") == "image_file"]
        b.citations = _citations(content)
    if status == "incomplete":
        reason = (details or {}).get("reason", "")
        b.note = _INCOMPLETE_NOTES.get(reason, "The reply is incomplete.")
    return b


def history_items(page: Any) -> list[dict[str, Any]]:
    """A history page as template items: {"bubble": Bubble} or {"step": html}."""
    items: list[dict[str, Any]] = []
    for item in page.items():
        if isinstance(item, RunStep):
            items.append({"step": render_step(step_obj(item, include_file_search_content=False))})
        else:
            items.append({"bubble": bubble(item)})
    return items


def render_message(b: Bubble, assistant_name: str) -> str:
    return render_to_string(f"{FRAGMENTS}#message", {"b": b, "assistant_name": assistant_name})


def upsert(html: str, container: str = "messages") -> str:
    """Append to `container`, or replace the element with the same id (app.js does the replacing)."""
    return f'<div hx-swap-oob="beforeend:#{container}">{html}</div>'


def append_text(target: str, text: str) -> str:
    return f'<div hx-swap-oob="beforeend:#{target}">{escape(text)}</div>'


def run_controls(run_id: str | None, label: str = "") -> str:
    return render_to_string(f"{FRAGMENTS}#run_controls", {"oob": True, "run_id": run_id, "run_label": label})


def run_notice(notice: str = "", *, retry: bool = False, kind: str = "error") -> str:
    return render_to_string(f"{FRAGMENTS}#run_notice", {"oob": True, **Notice(notice, retry, kind).context()})


@dataclass(frozen=True)
class Notice:
    text: str = ""
    retry: bool = False
    kind: str = "error"

    def context(self) -> dict[str, Any]:
        return {"notice": self.text, "retry": self.retry, "notice_kind": self.kind}


def ending_notice(run: dict[str, Any]) -> Notice:
    """What the page says under a finished reply, from its run object: the same live (the run's
    terminal event) and after a reload (the last run's row)."""
    status = run.get("status")
    retry = status in RETRYABLE_STATUSES
    if status == RunStatus.FAILED:
        return Notice((run.get("last_error") or {}).get("message") or "The reply failed.", retry)
    if status == RunStatus.EXPIRED:
        return Notice("The reply took too long and was stopped.", retry)
    if status == RunStatus.INCOMPLETE:
        reason = (run.get("incomplete_details") or {}).get("reason") or "a limit"
        return Notice(f"The reply is incomplete ({reason}).", retry, "info")
    if status == RunStatus.CANCELLED:
        return Notice("Stopped.", retry, "info")
    return Notice(retry=retry)


def follow(run_id: str | None) -> str:
    return render_to_string(f"{FRAGMENTS}#follow", {"run_id": run_id})


# --- tool steps ------------------------------------------------------------------------------------
def _call_view(call: dict[str, Any], index: int, *, final: bool) -> dict[str, Any]:
    kind = call.get("type", "function")
    view: dict[str, Any] = {
        "type": kind,
        "index": index,
        "input": "",
        "outputs": [],
        "status": "",
        "open": not final,
    }
    if kind == "function":
        fn = call.get("function") or {}
        view["title"] = f"Function {fn.get('name') or ''}".strip()
        view["input"] = fn.get("arguments") or ""
        if fn.get("output") is not None:
            view["outputs"] = [{"kind": "text", "text": fn["output"]}]
        elif final:
            view["status"] = "waiting for a result"
    elif kind == "code_interpreter":
        ci = call.get("code_interpreter") or {}
        view["title"] = "Code interpreter"
        view["input"] = ci.get("input") or ""
        view["outputs"] = [_output_view(o) for o in ci.get("outputs") or []]
    elif kind == "file_search":
        fs = call.get("file_search") or {}
        results = fs.get("results") or []
        view["title"] = "File search"
        if final:
            names = ", ".join(dict.fromkeys(r.get("file_name") or r.get("file_id", "") for r in results))
            text = f"{len(results)} result(s)" + (f" from {names}" if names else "")
            view["outputs"] = [{"kind": "text", "text": text}]
    else:
        view["title"] = kind.replace("_", " ").capitalize()
    return view


def _output_view(out: dict[str, Any]) -> dict[str, Any]:
    if out.get("type") == "image":
        return {"kind": "image", "file_id": (out.get("image") or {}).get("file_id", "")}
    return {"kind": "text", "text": out.get("logs") or ""}


def render_step(step: dict[str, Any]) -> str:
    details = step.get("step_details") or {}
    calls = [_call_view(c, i, final=True) for i, c in enumerate(details.get("tool_calls") or [])]
    if step.get("status") not in (None, "in_progress"):
        # The run ended without the result (a chat run stops at once when nothing can answer).
        for view in calls:
            if view["status"] == "waiting for a result":
                view["status"] = "not answered"
    error = (step.get("last_error") or {}).get("message", "") if step.get("status") == "failed" else ""
    view = {"id": step["id"], "status": step.get("status", ""), "calls": calls, "error": error}
    return render_to_string(f"{FRAGMENTS}#tool_step", {"step": view})


def render_output(out: dict[str, Any]) -> str:
    return render_to_string(f"{FRAGMENTS}#tool_output", {"out": _output_view(out)})


# --- the event renderer ----------------------------------------------------------------------------
class EventRenderer:
    """Turns one run's events into ops. One per socket: it remembers which tool calls it has drawn."""

    def __init__(self, assistant_name: str) -> None:
        self.assistant_name = assistant_name
        self._calls: set[tuple[str, int]] = set()

    def render(self, event: str, data: dict[str, Any]) -> list[Op]:
        kind = event.removeprefix("thread.")
        if kind == "message.delta":
            target = f"m-{data['id']}-body"
            return [
                Delta(target, part["text"].get("value", ""))
                for part in (data.get("delta") or {}).get("content") or []
                if part.get("type") == "text" and part.get("text")
            ]
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
            b = Bubble(id=data["id"], role="assistant", status="in_progress", streaming=True)
            return [upsert(render_message(b, self.assistant_name))]
        if kind in ("completed", "incomplete"):
            return [upsert(render_message(bubble(data), self.assistant_name))]
        return []

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
            return [run_controls(None), run_notice(notice.text, retry=notice.retry, kind=notice.kind)]
        return []


def merge(ops: list[Op]) -> str:
    """One websocket frame: fragments in order, runs of deltas to one target joined into one."""
    out: list[str] = []
    pending: Delta | None = None
    for op in ops:
        if isinstance(op, Delta):
            if pending is not None and pending.target == op.target:
                pending = Delta(op.target, pending.text + op.text)
                continue
            if pending is not None:
                out.append(append_text(pending.target, pending.text))
            pending = op
            continue
        if pending is not None:
            out.append(append_text(pending.target, pending.text))
            pending = None
        out.append(op)
    if pending is not None:
        out.append(append_text(pending.target, pending.text))
    return "".join(out)
