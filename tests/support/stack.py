"""The stack a test runs on: the database and Redis, and which tests depend on them.

scripts/test.sh runs the suite twice. Phase 1 runs every test on the embedded defaults (SQLite,
in-process events, no Redis). Phase 2 runs against throwaway PostgreSQL + Redis servers from
scripts/services.sh (DATABASE_URL=postgres://..., REDIS_URL=redis://...) with `--only-stack-tests`,
which keeps the tests whose result can depend on the stack. chatsite/settings.py reads those variables
at import, so one pytest process runs on one stack; parametrising a test over both stacks would need
two Django configurations in one process.

A test depends on the stack when it uses the database (pytest-django's `db`, `transactional_db`, a
fixture built on them such as `alice`, or the `django_db` mark), the live server (`live`), the run
event log (`event_log`), or one of the fixtures here. Nothing else is needed: a new test that touches
the database runs in both phases without being told to.

Fixtures (registered by tests/conftest.py):
    stack       this process's Stack; use it in a fixture or test that behaves differently on the
                production stack without needing it (e.g. a parametrisation with a Redis case)
    redis_url   the Redis URL; skips the test without Redis (phase 1), fails it in phase 2
    postgres    skips the test unless the database is PostgreSQL; fails it in phase 2
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import pytest

OPTION = "--only-stack-tests"
STACK_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live",
        "event_log",
        "stack",
        "redis_url",
        "postgres",
    }
)


def configured_redis_url() -> str | None:
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


@dataclass(frozen=True)
class Stack:
    database: str  # Django's connection.vendor: "sqlite" or "postgresql"
    redis_url: str | None

    @property
    def production(self) -> bool:
        return self.database == "postgresql" and self.redis_url is not None


def uses_stack(item: pytest.Item) -> bool:
    if item.get_closest_marker("django_db") is not None:
        return True
    return not STACK_FIXTURES.isdisjoint(getattr(item, "fixturenames", ()))


def select(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With --only-stack-tests (phase 2), deselect the tests that cannot depend on the stack."""
    if not config.getoption("only_stack_tests"):
        return
    keep = [item for item in items if uses_stack(item)]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if not uses_stack(item)])
        items[:] = keep


def _missing(request: pytest.FixtureRequest, what: str) -> None:
    if request.config.getoption("only_stack_tests"):
        pytest.fail(f"{OPTION} (phase 2) but {what}: start the services (scripts/services.sh)")
    pytest.skip(f"needs {what.removeprefix('no ')}")


@pytest.fixture(scope="session")
def stack() -> Stack:
    from django.db import connection

    return Stack(database=connection.vendor, redis_url=configured_redis_url())


@pytest.fixture
def redis_url(request: pytest.FixtureRequest, stack: Stack) -> str:
    if stack.redis_url is None:
        _missing(request, "no Redis: REDIS_URL is not set")
    assert stack.redis_url is not None
    return stack.redis_url


@pytest.fixture
def postgres(request: pytest.FixtureRequest, stack: Stack) -> None:
    if stack.database != "postgresql":
        _missing(request, "no PostgreSQL: DATABASE_URL is not a postgres:// URL")
