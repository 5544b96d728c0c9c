"""An answer's final content: its text with annotations, then the images tools made for it.

- `file_path` annotations where the text cites a file a tool wrote (`sandbox:/mnt/data/<name>`);
- `file_citation` annotations for the markers (e.g. 【0†source】) that file search told the model to
  write and that the answer actually uses; the indexes point at them in the final text.
"""

from __future__ import annotations

from typing import Any

from assistants_app.tools.hosted import Citation, OutputFile


def final_content(text: str, tool_files: list[OutputFile], citations: list[Citation]) -> list[dict[str, Any]]:
    """`tool_files` and `citations` are what the round's hosted tools returned (tools/hosted.py)."""
    annotations: list[dict[str, Any]] = []
    for f in tool_files:
        if f["image"]:
            continue
        marker = f"sandbox:/mnt/data/{f['name']}"
        start = text.find(marker)
        if start >= 0:
            annotations.append(_annotation("file_path", marker, start, {"file_id": f["file_id"]}))
    annotations += resolve_citations(text, citations)
    annotations.sort(key=lambda a: a["start_index"])
    content = [{"type": "text", "text": {"value": text, "annotations": annotations}}] if text else []
    content += [
        {"type": "image_file", "image_file": {"file_id": f["file_id"]}} for f in tool_files if f["image"]
    ]
    return content


def resolve_citations(text: str, citations: list[Citation]) -> list[dict[str, Any]]:
    """file_citation annotations for every occurrence of each citation's marker in `text`."""
    out = []
    for c in citations:
        marker = c["marker"]
        start = text.find(marker)
        while start >= 0:
            target = {"file_id": c["file_id"], "quote": c["quote"]}
            out.append(_annotation("file_citation", marker, start, target))
            start = text.find(marker, start + len(marker))
    return out


def _annotation(kind: str, marker: str, start: int, target: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": kind,
        "text": marker,
        "start_index": start,
        "end_index": start + len(marker),
        kind: target,
    }
