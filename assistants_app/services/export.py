"""A conversation exported as Markdown or JSON: its current path (what the page shows), oldest first."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC
from typing import Any

from assistants_app.models import Assistant, File, Message, Thread

FORMAT_VERSION = 1


def _messages(thread: Thread) -> Iterator[Message]:
    return (
        Message.objects.filter(thread=thread, superseded=False)
        .order_by("id")
        .only("id", "role", "content", "attachments", "created_at", "status", "assistant_id")
        .iterator(chunk_size=500)
    )


def _names(thread: Thread) -> tuple[dict[str, str], dict[str, str]]:
    files = dict(File.objects.filter(owner_id=thread.owner_id).values_list("id", "filename"))
    assistants = {k: v or "Assistant" for k, v in Assistant.objects.values_list("id", "name")}
    return files, assistants


def _when(m: Message) -> str:
    return m.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def as_json(thread: Thread) -> str:
    files, assistants = _names(thread)
    out: dict[str, Any] = {
        "format": "assistants-chat-export",
        "version": FORMAT_VERSION,
        "id": thread.id,
        "title": thread.title,
        "created_at": thread.created_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "messages": [],
    }
    for m in _messages(thread):
        item: dict[str, Any] = {"id": m.id, "role": m.role, "created_at": _when(m), "text": m.text}
        if m.role == "assistant":
            item["assistant"] = assistants.get(m.assistant_id or "", "Assistant")
            item["status"] = m.status
        attached = [a.get("file_id", "") for a in m.attachments or [] if isinstance(a, dict)]
        if attached:
            item["attachments"] = [{"file_id": f, "filename": files.get(f, "")} for f in attached]
        out["messages"].append(item)
    return json.dumps(out, ensure_ascii=False, indent=2)


def as_markdown(thread: Thread) -> str:
    files, assistants = _names(thread)
    lines = [f"# {thread.title or 'Conversation'}", ""]
    for m in _messages(thread):
        who = "You" if m.role == "user" else assistants.get(m.assistant_id or "", "Assistant")
        lines += [f"## {who} · {_when(m)}", "", m.text.rstrip(), ""]
        for a in m.attachments or []:
            if isinstance(a, dict) and a.get("file_id"):
                lines += [f"*Attached: {files.get(a['file_id'], a['file_id'])}*", ""]
    return "\n".join(lines).rstrip() + "\n"


def filename(thread: Thread, ext: str) -> str:
    stem = "".join(c if c.isalnum() or c in "-_ " else "" for c in (thread.title or "conversation"))
    stem = "-".join(stem.split())[:60] or "conversation"
    return f"{stem}.{ext}"
