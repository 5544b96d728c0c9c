"""A database that cannot be had in time (no pooled PostgreSQL connection within DB_POOL_TIMEOUT,
SQLite's write lock) is "busy" (503) in plain words wherever it happens: in a view, in the session
middleware before any view runs (where a 1,000-send burst met it), and in the API, as an
OpenAI-shaped error. Any other failure is still the ordinary 500."""

from __future__ import annotations

import pytest
from django.contrib.sessions.backends.db import SessionStore
from django.db import OperationalError
from django.test import Client

from assistants_app.services import keys

BUSY = "The server is busy right now. Please try again in a moment."


def _pool_timeout(*args, **kwargs):
    raise OperationalError("couldn't get a connection after 30.00 sec")


@pytest.fixture
def anonymous() -> Client:
    return Client(raise_request_exception=False)


@pytest.fixture
def signed_in(alice) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(alice)
    return client


def test_busy_while_the_session_loads_is_a_503_in_plain_words(signed_in, monkeypatch) -> None:
    monkeypatch.setattr(SessionStore, "load", _pool_timeout)
    page = signed_in.get("/")
    assert page.status_code == 503 and page["Retry-After"] == "5"
    assert BUSY in page.content.decode() and 'href="/"' in page.content.decode()

    fragment = signed_in.post("/chat/send/", {"text": "hello"}, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 503
    assert fragment.content.decode() == f'<p class="form-error" role="alert">{BUSY}</p>'


def test_busy_in_the_chat_send_view_stores_nothing(signed_in, alice, monkeypatch) -> None:
    from assistants_app.models import Message
    from assistants_app.services import chat

    monkeypatch.setattr(chat, "send", _pool_timeout)
    response = signed_in.post("/chat/send/", {"text": "hello"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 503 and BUSY in response.content.decode()
    assert not Message.objects.filter(thread__owner=alice).exists()


def test_other_failures_stay_a_500(signed_in, monkeypatch) -> None:
    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(SessionStore, "load", broken)
    page = signed_in.get("/")
    assert page.status_code == 500 and BUSY not in page.content.decode()


def test_busy_in_the_api_is_an_openai_shaped_503(anonymous, alice, monkeypatch) -> None:
    from django.db.models.query import QuerySet

    raw = keys.create_key(alice).raw
    auth = {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
    assert anonymous.get("/v1/assistants", **auth).status_code == 200  # control
    monkeypatch.setattr(QuerySet, "_fetch_all", _pool_timeout)
    response = anonymous.get("/v1/assistants", **auth)
    assert response.status_code == 503
    assert response.json() == {
        "error": {"message": BUSY, "type": "server_error", "param": None, "code": "server_busy"}
    }
