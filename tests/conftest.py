"""Shared fixtures: test settings, the scripted fake backend, an embedded run executor, the live
server, and the phase-2 selection (tests/support/stack.py). The named users are in
tests/support/users.py."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from assistants_app.backends import fake
from assistants_app.runs import events
from tests.support import live_server, stack

pytest_plugins = ["tests.support.users", "tests.support.stack"]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        stack.OPTION,
        action="store_true",
        dest="only_stack_tests",
        help="run only the tests that depend on the database/Redis (phase 2 of scripts/test.sh)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if "live" in getattr(item, "fixturenames", ()):
            item.add_marker("live")
    stack.select(config, items)


def pytest_collection_finish(session: pytest.Session) -> None:
    # Every live-server configuration the selected tests need starts at once, on first use.
    wanted = {
        tuple(sorted(_live_settings(item.module).items()))
        for item in session.items
        if "live" in getattr(item, "fixturenames", ())
        and isinstance(item, pytest.Function)
        and not _restartable(item.module)
    }
    for config in sorted(wanted):
        live_server.want(**dict(config))


def _live_settings(module: Any) -> dict[str, str]:
    """A module picks its live-server configuration (extra environment) with LIVE_SETTINGS."""
    return dict(getattr(module, "LIVE_SETTINGS", {}))


def _restartable(module: Any) -> bool:
    """A module that restarts its server or changes what every user sees (the default assistant)
    sets LIVE_RESTARTABLE = True: it gets a server of its own, stopped after the module."""
    return bool(getattr(module, "LIVE_RESTARTABLE", False))


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    # The default PBKDF2 costs seconds per user on these machines; no test is about the hash itself.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.MODEL_BACKEND = "fake"
    settings.RUN_POLL_SECONDS = 0.05
    settings.RUN_LEASE_SECONDS = 5.0
    settings.RUN_CHECKPOINT_SECONDS = 0.05
    settings.UPSTREAM_RETRY_BASE_SECONDS = 0.01
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    fake.reset()
    yield
    fake.reset()


@pytest.fixture
def event_log() -> Iterator[events.EventLog]:
    """A fresh event log per test (memory, or Redis when REDIS_URL is set)."""
    events.reset_event_log()
    yield events.get_event_log()
    events.reset_event_log()


@pytest.fixture
def executor(transactional_db, event_log):
    """An embedded executor thread, as `make run` has. Needs a transactional database."""
    from assistants_app.runs.executor import ThreadedExecutor

    ex = ThreadedExecutor(concurrency=8).start()
    yield ex.executor
    ex.stop()


@pytest.fixture(scope="module")
def live(request: pytest.FixtureRequest) -> Iterator[live_server.LiveServer]:
    """The real server (`manage.py serve` in a subprocess; in phase 2 with a run worker, PostgreSQL
    and Redis), one per configuration for the whole session; the module's LIVE_SETTINGS picks it,
    LIVE_RESTARTABLE gives the module a server of its own (`live.restart()`)."""
    settings = _live_settings(request.module)
    if not _restartable(request.module):
        yield live_server.shared_server(**settings)
        return
    server = live_server.own_server(**settings)
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _reset_live_upstream(request: pytest.FixtureRequest) -> None:
    # Replies a failed test left unconsumed would answer the next test's run.
    if "live" in request.fixturenames:
        request.getfixturevalue("live").reset_upstream()
