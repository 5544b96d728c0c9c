"""Issue 9, item 7: login guessing is throttled (django-axes), per username and per address, with
a clear message on the login page."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

# Also in phase 2: axes' tables on PostgreSQL.
pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


@pytest.fixture(autouse=True)
def _limits(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    settings.AXES_FAILURE_LIMIT = 5


def _try(username: str, password: str, address: str = "192.0.2.10"):
    client = Client(REMOTE_ADDR=address)
    response = client.post(LOGIN, {"username": username, "password": password})
    return client, response


def _logged_in(client: Client) -> bool:
    return "_auth_user_id" in client.session


def test_twelve_wrong_passwords_then_the_right_one_is_refused_with_a_clear_message(alice) -> None:
    for _ in range(12):
        _, response = _try("alice", "wrong-password")
        assert response.status_code in (200, 429)
    client, response = _try("alice", "alice-password-123")
    assert not _logged_in(client)
    assert response.status_code == 429
    page = response.content.decode()
    assert "Too many failed attempts" in page and "15 minutes" in page
    assert 'href="/accounts/password_reset/"' in page  # a way forward, not a bare error page
    assert int(response["Retry-After"]) == 900


def test_positive_control_a_few_typos_then_the_right_password_logs_in(alice) -> None:
    for _ in range(3):
        _, response = _try("alice", "wrong-password")
        assert response.status_code == 200  # the form again, with its usual error
    client, response = _try("alice", "alice-password-123")
    assert response.status_code == 302 and _logged_in(client)


def test_lockout_is_per_username_across_addresses(alice) -> None:
    for i in range(5):
        _try("alice", "wrong-password", address=f"192.0.2.{20 + i}")
    client, response = _try("alice", "alice-password-123", address="192.0.2.99")
    assert response.status_code == 429 and not _logged_in(client)


def test_lockout_is_per_address_across_usernames(alice, bob) -> None:
    for i in range(5):
        _try(f"nobody{i}", "guess", address="192.0.2.50")
    client, response = _try("bob", "bob-password-123", address="192.0.2.50")
    assert response.status_code == 429 and not _logged_in(client)
    # Bob from elsewhere is fine: the address, not the account, was locked.
    client, response = _try("bob", "bob-password-123", address="192.0.2.51")
    assert response.status_code == 302 and _logged_in(client)


def test_admin_login_is_covered_too(staff) -> None:
    for _ in range(5):
        Client(REMOTE_ADDR="192.0.2.60").post("/admin/login/", {"username": "staff", "password": "no"})
    client = Client(REMOTE_ADDR="192.0.2.61")
    response = client.post("/admin/login/", {"username": "staff", "password": "staff-password-123"})
    assert response.status_code == 429 and not _logged_in(client)


def test_huge_username_is_not_a_500() -> None:
    _, response = _try("u" * 100_000, "x")
    assert response.status_code == 200


def test_authenticate_without_a_request_still_works(alice) -> None:
    # Management commands and the test client's login() have no request; axes would raise on them.
    assert Client().login(username="alice", password="alice-password-123")
    assert get_user_model().objects.filter(username="alice").exists()
