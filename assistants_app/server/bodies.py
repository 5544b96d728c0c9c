"""How large a request body may be, by URL, and what a refused one is answered.

The upload routes (views marked with `accepts_uploads`, and the admin's assistant forms, which take
retrieval files) may receive FILE_UPLOAD_MAX_BYTES plus multipart framing; every other URL
DATA_UPLOAD_MAX_MEMORY_SIZE. serve's HTTP layer (http.py) applies the cap before buffering a body:
by Content-Length when there is one, while reading a chunked one.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import unquote

from django.conf import settings
from django.urls import Resolver404, resolve

# Multipart framing and the small form fields that travel with an uploaded file.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
# Admin views that take files (the assistant editor's retrieval files), by URL name.
ADMIN_UPLOAD_URL_NAMES = frozenset({"assistants_app_assistant_add", "assistants_app_assistant_change"})

V = TypeVar("V", bound=Callable[..., Any])


def accepts_uploads[V: Callable[..., Any]](view: V) -> V:
    """Mark a view as an upload route: its bodies may be as large as a file upload."""
    view.accepts_uploads = True  # type: ignore[attr-defined]
    return view


def upload_limit() -> int:
    return int(settings.FILE_UPLOAD_MAX_BYTES) + MULTIPART_OVERHEAD_BYTES


def data_limit() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE)


def is_upload_route(path: str) -> bool:
    try:
        match = resolve(unquote(path))
    except (Resolver404, UnicodeDecodeError, ValueError):
        return False
    return bool(getattr(match.func, "accepts_uploads", False)) or match.url_name in ADMIN_UPLOAD_URL_NAMES


def limit_for(path: str) -> int:
    """The largest body accepted for a request to `path` (no query string)."""
    return upload_limit() if is_upload_route(path) else data_limit()


def too_large_response(path: str, limit: int) -> bytes:
    """A complete HTTP/1.1 413 response: an OpenAI error object under /v1, plain words elsewhere."""
    if path == "/v1" or path.startswith("/v1/"):
        message = f"The request body is too large: this endpoint accepts at most {limit} bytes." + (
            " (FILE_UPLOAD_MAX_BYTES plus multipart framing)" if limit == upload_limit() else ""
        )
        error = {
            "message": message,
            "type": "invalid_request_error",
            "param": None,
            "code": "payload_too_large",
        }
        body = json.dumps({"error": error}).encode()
        headers = [b"Content-Type: application/json", b"x-should-retry: false"]
    else:
        body = f"The request is too large: at most {_human(limit)} can be sent here.\n".encode()
        headers = [b"Content-Type: text/plain; charset=utf-8"]
    head = [
        b"HTTP/1.1 413 Payload Too Large",
        *headers,
        b"Content-Length: %d" % len(body),
        b"Connection: close",
    ]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


def _human(n: int) -> str:
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.1f} MB"
    if n >= 1024:
        return f"{n / 1024:.0f} KB"
    return f"{n} bytes"
