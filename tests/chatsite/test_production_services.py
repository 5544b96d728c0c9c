"""Smoke tests of the production services: Redis and PostgreSQL are reachable the way the app uses them.

Run by phase 2 of scripts/test.sh (services from scripts/services.sh); skipped on the embedded defaults
(the `redis_url` and `postgres` fixtures, tests/support/stack.py).
"""

from __future__ import annotations

import uuid

import pytest
from django.db import connection


def test_redis_ping(redis_url):
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    try:
        assert client.ping() is True
    finally:
        client.close()


@pytest.mark.usefixtures("redis_url")
async def test_redis_channel_layer_round_trip():
    from channels.layers import get_channel_layer

    layer = get_channel_layer()
    assert type(layer).__name__ == "RedisChannelLayer"
    channel = f"smoke.{uuid.uuid4().hex}"
    await layer.send(channel, {"type": "smoke.ping", "n": 1})
    assert await layer.receive(channel) == {"type": "smoke.ping", "n": 1}
    await layer.flush()


@pytest.mark.django_db
def test_postgres_query(postgres):
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
