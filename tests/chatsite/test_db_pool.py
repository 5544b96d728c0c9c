"""PostgreSQL goes through Django's psycopg pool, sized by DB_POOL_SIZE (issue 13).

Before it, every request's thread opened a connection of its own: 1,000 chat sends at the same
instant asked PostgreSQL for ~1,000 connections and most got "sorry, too many clients already"
(500). The settings are read once per process, so each case imports them in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from typing import Any

import pytest
from django.db import connections

from assistants_app import asyncdb
from tests.support import ROOT

_SHOW = (
    "import json; from chatsite import settings as s; print(json.dumps(s.DATABASES['default'], default=str))"
)


def _default_database(**env: str) -> dict[str, Any]:
    run_env = {k: v for k, v in os.environ.items() if not k.startswith("DB_") and k != "DATABASE_URL"}
    run_env.update(env)
    out = subprocess.run(
        [sys.executable, "-c", _SHOW], cwd=ROOT, env=run_env, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def test_postgres_uses_a_pool_of_db_pool_size_connections() -> None:
    db = _default_database(
        DATABASE_URL="postgres://u:p@127.0.0.1:5432/x",
        DB_POOL_SIZE="7",
        DB_POOL_TIMEOUT="2.5",
        DB_CONN_MAX_AGE="60",
    )
    assert db["OPTIONS"] == {"pool": {"min_size": 2, "max_size": 7, "timeout": 2.5}}
    # Django refuses persistent connections with a pool: pooled ones go back to it instead.
    assert db["CONN_MAX_AGE"] == 0


def test_the_pool_is_on_by_default_and_off_with_size_zero() -> None:
    on = _default_database(DATABASE_URL="postgres://u:p@127.0.0.1:5432/x")
    assert on["OPTIONS"] == {"pool": {"min_size": 2, "max_size": 20, "timeout": 30.0}}
    off = _default_database(
        DATABASE_URL="postgres://u:p@127.0.0.1:5432/x", DB_POOL_SIZE="0", DB_CONN_MAX_AGE="60"
    )
    assert "pool" not in (off.get("OPTIONS") or {})
    assert off["CONN_MAX_AGE"] == 60


def test_sqlite_has_no_pool() -> None:
    db = _default_database(DATABASE_URL="sqlite:////tmp/x.sqlite3", DB_POOL_SIZE="7")
    assert "pool" not in db["OPTIONS"]


def _thread_and_connection_state() -> tuple[int, bool]:
    """(this thread, whether it still had a connection open), then uses the database."""
    had_connection = connections["default"].connection is not None
    with connections["default"].cursor() as cursor:
        cursor.execute("SELECT 1")
    return threading.get_ident(), had_connection


async def _states() -> list[tuple[int, bool]]:
    # One after another, so the pool's idle thread takes each call.
    return [await asyncdb.db(_thread_and_connection_state)() for _ in range(4)]


@pytest.mark.parametrize("pooled", [True, False])
async def test_db_calls_hand_their_connection_back_only_with_a_pool(
    transactional_db, monkeypatch, pooled
) -> None:
    monkeypatch.setattr(asyncdb, "pooled", lambda: pooled)
    asyncdb.shutdown("runs")  # fresh threads: none has a connection yet
    try:
        states = await _states()
    finally:
        asyncdb.shutdown("runs")
    seen: set[int] = set()
    reused = []
    for ident, had_connection in states:
        if ident in seen:
            reused.append(had_connection)
        seen.add(ident)
    assert reused, "no call landed on a thread that had run one before"
    # Pooled: each call returned its connection, so the thread starts without one. Not pooled (the
    # control): the thread keeps its connection from one call to the next.
    assert reused == [not pooled] * len(reused)
