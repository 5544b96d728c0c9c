"""Messages, tool steps and run controls → HTML fragments, for the page and the websocket (whose
fragments are hx-swap-oob swaps; web/live.py turns run events into them).

Rendering is pure: no database access, so the consumer can call it on its event loop. What needs
the database (version pagers, ratings, image names and sizes, assistant names) comes in as
services.chat_decorations.Decorations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.html import escape

from assistants_app.models import Message, RunStep
from assistants_app.models.run import RunStatus
from assistants_app.serializers import step_obj
from assistants_app.services.chat import RETRYABLE_STATUSES
from assistants_app.services.chat_decorations import Decorations, Image
from assistants_app.services.chat_errors import failure_words, step_words
from assistants_app.services.versions import Pager

from .rendering import content_text, markdown_to_html

FRAGMENTS = "chat/fragments.html"


@dataclass(frozen=True, slots=True)
class Delta:
    """Text to append to element `target`; consecutive deltas for one target are merged."""

    target: str
    text: str


Op = str | Delta


@dataclass
class Source:
    """A cited file, listed once, with the passages quoted from it."""

    number: int
    anchor: str
    name: str
    file_id: str
    quotes: list[str] = field(default_factory=list)


@dataclass
class Bubble:
    id: str
    role: str
    status: str
    text: str = ""  # the message's source text (Markdown for replies): shown, copied, edited
    html: str = ""
    files: list[tuple[str, str]] = field(default_factory=list)
    note: str = ""
    streaming: bool = False
    images: list[Image] = field(default_factory=list)  # the tools' charts; images a user showed
    sources: list[Source] = field(default_factory=list)
    run_id: str = ""
    assistant_name: str = ""
    pager: Pager | None = None
    rating: int = 0


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


def _sources(msg_id: str, content: list[dict[str, Any]]) -> list[Source]:
    """The cited files, once each, numbered in order of first mention (as the chips are)."""
    by_name: dict[str, Source] = {}
    for a in sorted(_annotations(content), key=lambda a: a.get("start_index") or 0):
        if a.get("type") != "file_citation":
            continue
        marker = a.get("text", "")
        cited = a.get("file_citation") or {}
        name = (marker.split("†", 1)[1].rstrip("】").strip() if "†" in marker else "") or cited.get(
            "file_id", ""
        )
        source = by_name.get(name)
        if source is None:
            number = len(by_name) + 1
            anchor = f"m-{msg_id}-src-{number}"
            source = by_name[name] = Source(number, anchor, name, cited.get("file_id", ""))
        quote = cited.get("quote", "")
        if quote and quote not in source.quotes:
            source.quotes.append(quote)
    return list(by_name.values())


def bubble(m: Message | dict[str, Any], deco: Decorations | None = None) -> Bubble:
    """The view of a message, from a row or from an API message object (a run event's payload)."""
    run_id: str | None
    assistant_id: str | None
    if isinstance(m, Message):
        msg_id, role, status, content = m.id, m.role, m.status, m.content
        details, files = m.incomplete_details, getattr(m, "files", [])
        run_id, assistant_id = m.run_id, m.assistant_id
    else:
        msg_id, role, status, content = m["id"], m["role"], m["status"], m.get("content") or []
        details, files = m.get("incomplete_details"), []
        run_id, assistant_id = m.get("run_id"), m.get("assistant_id")
    text = content_text(content)
    b = Bubble(id=msg_id, role=role, status=status, files=list(files), text=text, run_id=run_id or "")
    if role != "user":
        b.sources = _sources(msg_id, content)
        anchors = {s.name: s.anchor for s in b.sources}
        b.html = markdown_to_html(_link_files(content, text), anchors)
    ids = [p["image_file"]["file_id"] for p in content if p.get("type") == "image_file"]
    if ids:
        known = deco.images if deco else {}
        default = "Image made by the assistant's code" if role != "user" else "Image"
        b.images = [known.get(fid) or Image(fid, default) for fid in ids]
    if deco is not None:
        b.assistant_name = deco.assistant_names.get(assistant_id or "", "")
        b.pager = deco.pagers.get(msg_id)
        b.rating = deco.ratings.get(msg_id, 0)
    if status == "incomplete":
        reason = (details or {}).get("reason", "")
        b.note = _INCOMPLETE_NOTES.get(reason, "The reply is incomplete.")
    return b


def history_items(items: list[Message | RunStep], deco: Decorations | None = None) -> list[dict[str, Any]]:
    """Messages and steps in order as template items: {"bubble": Bubble} or {"step": html}."""
    out: list[dict[str, Any]] = []
    for item in items:
        if isinstance(item, RunStep):
            out.append({"step": render_step(step_obj(item, include_file_search_content=False))})
        else:
            out.append({"bubble": bubble(item, deco)})
    return out


def render_message(b: Bubble, assistant_name: str) -> str:
    return render_to_string(f"{FRAGMENTS}#message", {"b": b, "assistant_name": assistant_name})


def upsert(html: str, container: str = "messages") -> str:
    """Append to `container`, or replace the element with the same id (app.js does the replacing)."""
    return f'<div hx-swap-oob="beforeend:#{container}">{html}</div>'


def append_text(target: str, text: str) -> str:
    return f'<div hx-swap-oob="beforeend:#{target}">{escape(text)}</div>'


def run_controls(run_id: str | None, label: str = "") -> str:
    return render_to_string(f"{FRAGMENTS}#run_controls", {"oob": True, "run_id": run_id, "run_label": label})


def run_notice(notice: str | Notice = "", *, retry: bool = False, kind: str = "error") -> str:
    n = notice if isinstance(notice, Notice) else Notice(notice, retry, kind)
    return render_to_string(f"{FRAGMENTS}#run_notice", {"oob": True, **n.context()})


@dataclass(frozen=True)
class Notice:
    text: str = ""
    retry: bool = False
    kind: str = "error"
    can_continue: bool = False

    def context(self) -> dict[str, Any]:
        return {
            "notice": self.text,
            "retry": self.retry,
            "notice_kind": self.kind,
            "can_continue": self.can_continue,
        }


def ending_notice(run: dict[str, Any]) -> Notice:
    """What the page says under a finished reply, from its run object: the same live (the run's
    terminal event) and after a reload (the last run's row)."""
    status = run.get("status")
    retry = status in RETRYABLE_STATUSES
    if status in (RunStatus.FAILED, RunStatus.EXPIRED):
        return Notice(failure_words(run), retry)
    if status == RunStatus.INCOMPLETE:
        reason = (run.get("incomplete_details") or {}).get("reason") or ""
        return Notice(_LIMIT_WORDS.get(reason, "The reply stopped at a limit."), retry, "info")
    if status == RunStatus.CANCELLED:
        # The stopped reply says "Stopped." itself; the notice only offers to go on.
        return Notice(kind="info", can_continue=True)
    return Notice(retry=retry)


_LIMIT_WORDS = {
    "max_completion_tokens": "The reply stopped at its length limit.",
    "max_prompt_tokens": "The conversation is too long for the assistant to read whole.",
}


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
    view = {"id": step["id"], "status": step.get("status", ""), "calls": calls, "error": step_words(step)}
    return render_to_string(f"{FRAGMENTS}#tool_step", {"step": view})


def render_output(out: dict[str, Any]) -> str:
    return render_to_string(f"{FRAGMENTS}#tool_output", {"out": _output_view(out)})


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
