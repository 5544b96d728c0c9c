"""Shared fixtures: named test users, the scripted fake backend, and an embedded run executor."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model

from assistants_app.backends import fake
from assistants_app.runs import events

# The chat product's shared browser and live server (one each per session).
pytest_plugins = ["tests.chat_live"]


@pytest.fixture(autouse=True)
def _test_settings(settings, tmp_path):  # type: ignore[no-untyped-def]
    settings.MEDIA_ROOT = tmp_path / "media"
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
def alice(db):  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_user("alice", "alice@example.com", "alice-password-123")


@pytest.fixture
def bob(db):  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_user("bob", "bob@example.com", "bob-password-123")


@pytest.fixture
def staff(db):  # type: ignore[no-untyped-def]
    return get_user_model().objects.create_superuser("staff", "staff@example.com", "staff-password-123")


@pytest.fixture
def event_log() -> Iterator[events.EventLog]:
    """A fresh event log per test (memory, or Redis when REDIS_URL is set)."""
    events.reset_event_log()
    yield events.get_event_log()
    events.reset_event_log()


@pytest.fixture
def executor(transactional_db, event_log):  # type: ignore[no-untyped-def]
    """An embedded executor thread, as `make run` has. Needs a transactional database."""
    from assistants_app.runs.executor import ThreadedExecutor

    ex = ThreadedExecutor(concurrency=8).start()
    yield ex.executor
    ex.stop()
