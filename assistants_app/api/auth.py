"""Bearer-key authentication for /v1: `Authorization: Bearer <key>`; no cookies, so no CSRF."""

from __future__ import annotations

import threading
import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest
from django.utils import timezone

from assistants_app.models import ApiKey
from assistants_app.server.proxies import client_address
from assistants_app.services.keys import digest, is_weak_key

from .errors import TooManyBadKeys, Unauthorized

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
        _bad_key(request)
        raise Unauthorized(f"Incorrect API key provided: {_redact(raw)}.")
    key = ApiKey.objects.select_related("user").filter(digest=digest(raw)).first()
    if key is None or key.revoked_at is not None or not key.user.is_active:
        _bad_key(request)
        raise Unauthorized(f"Incorrect API key provided: {_redact(raw)}.")
    _touch(key)
    return key


def _bad_key(request: HttpRequest) -> None:
    """Count a bad key against the client's address; past the limit, answer 429 instead of 401.

    The window opens at an address's first bad key and lasts API_KEY_FAILURE_WINDOW_SECONDS (the
    counter's expiry, which incrementing keeps). It lives in the cache: Redis when REDIS_URL is set,
    so every process shares the count. A valid key is never counted or refused: this runs only after
    a lookup has failed, so a client with a good key behind the same address is not slowed.
    """
    limit = int(settings.API_KEY_FAILURE_LIMIT)
    window = int(settings.API_KEY_FAILURE_WINDOW_SECONDS)
    if limit <= 0 or window <= 0:
        return
    now = time.time()
    name = f"apikey-failures:{client_address(request)}"
    cache.add(f"{name}:since", now, timeout=window)
    cache.add(name, 0, timeout=window)
    try:
        count = cache.incr(name)
    except ValueError:  # expired between add and incr: a new window
        cache.set(name, 1, timeout=window)
        count = 1
    if count > limit:
        since = float(cache.get(f"{name}:since") or now)
        raise TooManyBadKeys(retry_after=max(1.0, since + window - now))


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
