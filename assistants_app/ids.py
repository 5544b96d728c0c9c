"""OpenAI-style prefixed ids that sort by creation time.

The suffix starts with the creation time in milliseconds, so ordering by id is ordering by
creation: cursor pagination becomes `id > after` on an index, with no extra sequence column.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from django.db import models

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_lock = threading.Lock()
_last_ms = 0
_counter = 0

PREFIXES = {
    "assistant": "asst_",
    "thread": "thread_",
    "message": "msg_",
    "run": "run_",
    "step": "step_",
    "file": "file-",
    "vector_store": "vs_",
    "file_batch": "vsfb_",
    "call": "call_",
}


def _b62(n: int, width: int) -> str:
    out = []
    for _ in range(width):
        n, r = divmod(n, 62)
        out.append(_ALPHABET[r])
    return "".join(reversed(out))


def new_id(kind: str) -> str:
    """A 24-character suffix: 8 chars of milliseconds, 3 of an in-process counter, 13 random."""
    global _last_ms, _counter
    with _lock:
        ms = int(time.time() * 1000)
        if ms <= _last_ms:
            ms = _last_ms
            _counter += 1
        else:
            _last_ms, _counter = ms, 0
        count = _counter
    rand = "".join(secrets.choice(_ALPHABET) for _ in range(13))
    return PREFIXES[kind] + _b62(ms, 8) + _b62(count % 62**3, 3) + rand


# Module-level callables so that migrations can reference them as field defaults.
def new_assistant_id() -> str:
    return new_id("assistant")


def new_thread_id() -> str:
    return new_id("thread")


def new_message_id() -> str:
    return new_id("message")


def new_run_id() -> str:
    return new_id("run")


def new_step_id() -> str:
    return new_id("step")


def new_file_id() -> str:
    return new_id("file")


def new_vector_store_id() -> str:
    return new_id("vector_store")


def new_file_batch_id() -> str:
    return new_id("file_batch")


def new_call_id() -> str:
    return new_id("call")


class IdField(models.CharField[str, str]):
    """A prefixed id primary key that sorts byte-wise on every database.

    Pagination and "newest first" order by id. PostgreSQL compares text with the database's
    collation (e.g. en_US.UTF-8 sorts 'a' before 'Z'), which would scramble that order, so the
    column uses the "C" collation there; SQLite already compares bytes. Foreign keys inherit it.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 40)
        kwargs.setdefault("primary_key", True)
        kwargs.setdefault("editable", False)
        super().__init__(*args, **kwargs)

    def db_parameters(self, connection: Any) -> dict[str, Any]:
        params = super().db_parameters(connection)
        if connection.vendor == "postgresql":
            params["collation"] = "C"
        return params
