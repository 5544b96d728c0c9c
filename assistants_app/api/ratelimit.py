"""An optional per-key request limit (settings.API_RATE_LIMIT_PER_MINUTE; 0 = off).

A sliding one-minute window kept in this process's memory: enough to stop one runaway client from
starving the others on a single server. Several server processes each apply the limit on their own.
"""

from __future__ import annotations

import threading
import time
from collections import deque

from django.conf import settings

from .errors import RateLimited

_lock = threading.Lock()
_windows: dict[int, deque[float]] = {}


def check(key_id: int) -> None:
    limit = int(settings.API_RATE_LIMIT_PER_MINUTE)
    if limit <= 0:
        return
    now = time.monotonic()
    with _lock:
        window = _windows.setdefault(key_id, deque())
        while window and window[0] <= now - 60:
            window.popleft()
        if len(window) >= limit:
            raise RateLimited(retry_after=window[0] + 60 - now)
        window.append(now)


def reset() -> None:
    with _lock:
        _windows.clear()
