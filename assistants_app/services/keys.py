"""API keys: generation, hashing, weak-key refusal, creation and revocation.

Keys are `sk-as-` + 40 url-safe characters (240 random bits). Only the SHA-256 digest is stored: a
key with that much entropy needs no slow hash, and a fast one keeps authentication to one indexed
lookup. The full key is shown once, by whoever creates it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from assistants_app.errors import InvalidRequest, NotFound
from assistants_app.models import ApiKey

KEY_PREFIX = "sk-as-"
KEY_RANDOM_CHARS = 40
MIN_KEY_LENGTH = 32
PREFIX_SHOWN = 12  # "sk-as-" + 6 characters: enough to tell keys apart in a listing

# Strings people paste into examples and configs. A "key" like these is refused before any lookup.
_COMMON = {
    "sk-",
    "sk-test",
    "sk-xxx",
    "test",
    "testkey",
    "test-key",
    "secret",
    "password",
    "changeme",
    "apikey",
    "api-key",
    "api_key",
    "your-api-key",
    "<your_api_key>",
    "your_api_key",
    "x",
    "dummy",
    "none",
    "null",
    "undefined",
    "admin",
    "letmein",
    "1234567890",
    "sk-1234567890",
}


def digest(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


def generate_key() -> str:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    return KEY_PREFIX + "".join(secrets.choice(alphabet) for _ in range(KEY_RANDOM_CHARS))


def is_weak_key(raw_key: str) -> bool:
    """Short keys, well-known placeholder strings, and keys with almost no distinct characters."""
    key = raw_key.strip()
    if len(key) < MIN_KEY_LENGTH or key.lower() in _COMMON:
        return True
    body = key[len(KEY_PREFIX) :] if key.startswith(KEY_PREFIX) else key
    return len(set(body)) < 8


@dataclass(frozen=True)
class NewKey:
    key: ApiKey
    raw: str  # shown once


def create_key(user: Any, *, name: str = "", raw: str | None = None) -> NewKey:
    """Create a key for `user`. `raw` imports a key made elsewhere; it must not be weak."""
    if raw is None:
        raw = generate_key()
    elif is_weak_key(raw):
        raise InvalidRequest(
            f"Refusing a weak API key: use at least {MIN_KEY_LENGTH} random characters.", param="key"
        )
    row = ApiKey.objects.create(user=user, name=name[:100], prefix=raw[:PREFIX_SHOWN], digest=digest(raw))
    return NewKey(row, raw)


def find_keys(ref: str) -> list[ApiKey]:
    """The key with row id `ref`, or the active keys whose shown prefix `ref` is (or begins, or is
    the beginning of: a full key also identifies its row, its first 12 characters being the prefix)."""
    if ref.isdigit():
        return list(ApiKey.objects.filter(id=int(ref)))
    candidates = ApiKey.objects.filter(prefix__startswith=ref[:16], revoked_at__isnull=True)
    return [k for k in candidates if ref.startswith(k.prefix) or k.prefix.startswith(ref)]


def revoke_key(key_id: int) -> ApiKey:
    """Revoke a key by its row id; revoking twice keeps the first revocation time."""
    row = ApiKey.objects.filter(id=key_id).first()
    if row is None:
        raise NotFound("API key", str(key_id))
    if row.revoked_at is None:
        ApiKey.objects.filter(id=key_id, revoked_at__isnull=True).update(revoked_at=timezone.now())
        row.refresh_from_db()
    return row
