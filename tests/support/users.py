"""The named test users, shared by every test (registered by tests/conftest.py).

    alice   an ordinary user; the one most tests act as
    bob     a second ordinary user: the "other owner" for isolation tests
    staff   a superuser, for the admin

Their passwords are "<name>-password-123" and their addresses "<name>@example.com" (login, password
change and reset tests type them). The live server (tests/support/live_server.py) has API keys for
alice, bob and "fuzz" (schemathesis' user); browser tests sign up fresh users, as a person would.
"""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model


def password(name: str) -> str:
    return f"{name}-password-123"


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", "alice@example.com", password("alice"))


@pytest.fixture
def bob(db):
    return get_user_model().objects.create_user("bob", "bob@example.com", password("bob"))


@pytest.fixture
def staff(db):
    return get_user_model().objects.create_superuser("staff", "staff@example.com", password("staff"))


@pytest.fixture
def staff_client(client, staff):
    """Django's test client, logged in as staff."""
    client.force_login(staff)
    return client
