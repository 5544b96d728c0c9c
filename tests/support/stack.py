"""Helpers for tests that need the production services (Redis, PostgreSQL).

The suite runs twice (scripts/test.sh): phase 1 on the embedded defaults (SQLite, no Redis), phase 2
against throwaway servers from scripts/services.sh (DATABASE_URL=postgres://..., REDIS_URL=redis://...).
Tests that only make sense on the production path skip themselves in phase 1:

    from tests.support.stack import needs_postgres, needs_redis, redis_url

    @needs_redis
    def test_streams(): ...
"""

from __future__ import annotations

import os

import pytest


def redis_url() -> str | None:
    """The Redis the app is configured with (settings.REDIS_URL, i.e. the REDIS_URL env var), or None."""
    try:
        from django.conf import settings

        url = getattr(settings, "REDIS_URL", "") if settings.configured else ""
    except Exception:  # settings not importable: fall back to the environment
        url = ""
    return url or os.environ.get("REDIS_URL") or None


def postgres_in_use() -> bool:
    """True when Django's default database is PostgreSQL (a postgres DATABASE_URL is set)."""
    from django.db import connection

    return connection.vendor == "postgresql"


needs_redis = pytest.mark.skipif(redis_url() is None, reason="needs Redis: REDIS_URL is not set")
needs_postgres = pytest.mark.skipif(
    not postgres_in_use(), reason="needs PostgreSQL: DATABASE_URL is not a postgres:// URL"
)
