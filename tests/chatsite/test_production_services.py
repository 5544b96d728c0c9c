"""Smoke tests of the production services: Redis and PostgreSQL are reachable the way the app uses them.

Run by phase 2 of scripts/test.sh (services from scripts/services.sh); skipped on the embedded defaults.
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection

from tests.support.stack import needs_postgres, needs_redis, redis_url

pytestmark = pytest.mark.production


@needs_redis
def test_redis_ping():
    import redis

    client = redis.Redis.from_url(redis_url(), socket_timeout=5)
    try:
        assert client.ping() is True
    finally:
        client.close()


@needs_redis
async def test_redis_channel_layer_round_trip():
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer"
    channel = f"smoke.{uuid.uuid4().hex}"
    await layer.send(channel, {"type": "smoke.ping", "n": 1})
    assert await layer.receive(channel) == {"type": "smoke.ping", "n": 1}
    await layer.flush()


@needs_postgres
@pytest.mark.django_db
def test_postgres_query():
    assert connection.vendor == "postgresql"
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 + 1, current_database()")
        total, database = cursor.fetchone()
    assert total == 2
    # pytest-django runs against its own test database, created with the migrations applied.
    assert database.startswith("test_")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM django_migrations")
        assert cursor.fetchone()[0] > 0
