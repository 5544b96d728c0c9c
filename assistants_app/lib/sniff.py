"""Content types from a file's first bytes; the client's declared type and name are only hints."""

from __future__ import annotations

import mimetypes

# How much of a file's start is looked at.
SNIFF_BYTES = 4096

_MAGIC: list[tuple[bytes, str]] = [
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"RIFF", "image/webp"),  # confirmed below
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b", "application/gzip"),
]

_ZIP_BASED = {
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
}

# Text formats told apart only by their name; any of them is still served as plain bytes.
_TEXT_BY_EXTENSION = {
    ".md": "text/markdown",
    ".json": "application/json",
    ".csv": "text/csv",
    ".html": "text/html",
    ".py": "text/x-python",
}


def sniff_content_type(head: bytes, filename: str) -> str:
    ext = "." + filename.rsplit(".", 1)[-1].lower() if "." in filename else ""
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            if kind == "image/webp" and head[8:12] != b"WEBP":
                break
            if kind == "application/zip" and ext in _ZIP_BASED:
                return _ZIP_BASED[ext]
            return kind
    if _looks_like_text(head):
        return _TEXT_BY_EXTENSION.get(ext) or (
            guess if (guess := mimetypes.guess_type(f"x{ext}")[0] or "").startswith("text/") else "text/plain"
        )
    return "application/octet-stream"


def _looks_like_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut off at the end of the sample is still text.
        return exc.start >= len(head) - 3
    return True
