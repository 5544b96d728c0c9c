"""Bearer-key authentication for /v1: `Authorization: Bearer <key>`; no cookies, so no CSRF."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from django.http import HttpRequest
from django.utils import timezone

from assistants_app.models import ApiKey

from .errors import Unauthorized
from .keys import digest, is_weak_key

# last_used_at is advisory: write it at most once a minute per key, not on every request.
LAST_USED_RESOLUTION = timedelta(seconds=60)


def authenticate(request: HttpRequest) -> ApiKey:
    header = request.headers.get("Authorization", "")
    scheme, _, raw = header.partition(" ")
    raw = raw.strip()
    if scheme.lower() != "bearer" or not raw:
        raise Unauthorized(
            "You didn't provide an API key. You need to provide your API key in an Authorization header "
            "using Bearer auth (i.e. Authorization: Bearer YOUR_KEY)."
        )
    if is_weak_key(raw):
        # Never even looked up: a placeholder like "sk-xxx" is always a configuration mistake.
        raise Unauthorized(f"Incorrect API key provided: {_redact(raw)}.")
    key = ApiKey.objects.select_related("user").filter(digest=digest(raw)).first()
    if key is None or key.revoked_at is not None or not key.user.is_active:
        raise Unauthorized(f"Incorrect API key provided: {_redact(raw)}.")
    _touch(key)
    return key


_touched: dict[int, float] = {}
_touched_lock = threading.Lock()


def _touch(key: ApiKey) -> None:
    now = timezone.now()
    if key.last_used_at is not None and now - key.last_used_at <= LAST_USED_RESOLUTION:
        return
    # A burst of requests all read the same stale value; only the first of them writes (SQLite
    # serializes writers, so each needless UPDATE delays every other request).
    mono = time.monotonic()
    with _touched_lock:
        if mono - _touched.get(key.id, -1e9) < LAST_USED_RESOLUTION.total_seconds():
            return
        _touched[key.id] = mono
    ApiKey.objects.filter(id=key.id).update(last_used_at=now)


def _redact(raw: str) -> str:
    if len(raw) <= 10:
        return "*" * len(raw)
    return f"{raw[:6]}{'*' * 8}{raw[-4:]}"
