"""HTTP requests make one trip to a thread for the whole middleware chain and the view (issue 13).

Django's stock ASGIHandler runs each MiddlewareMixin hook through its own `sync_to_async`: about a
dozen loop <-> thread round trips per request, most of the ~3 ms of server CPU even a 404 cost.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from channels.testing import HttpCommunicator
from django.core.handlers.asgi import ASGIHandler
from django.core.signals import request_started
from django.db import connections
from django.db.backends.signals import connection_created

from assistants_app.server.asgi_handler import OneTripASGIHandler
from chatsite.asgi import application


@pytest.fixture
def trips(monkeypatch) -> list[str]:
    """The name of every function handed to a thread by sync_to_async while the test runs."""
    seen: list[str] = []
    original = SyncToAsync.__call__

    async def counting(self: SyncToAsync, *args: Any, **kwargs: Any) -> Any:  # type: ignore[type-arg]
        seen.append(getattr(self.func, "__qualname__", repr(self.func)))
        return await original(self, *args, **kwargs)

    monkeypatch.setattr(SyncToAsync, "__call__", counting)
    return seen


async def _get(app: Any, path: str, headers: list[tuple[bytes, bytes]] | None = None) -> dict[str, Any]:
    comm = HttpCommunicator(app, "GET", path, headers=[(b"host", b"localhost"), *(headers or [])])
    response: dict[str, Any] = await comm.get_response(timeout=10)
    await comm.wait(timeout=10)  # the handler's end too (response.close, the thread given back)
    return response


@pytest.mark.django_db(transaction=True)
async def test_a_request_goes_to_its_thread_once(trips) -> None:
    response = await _get(application, "/v1/no-such-path")
    assert response["status"] == 404
    # request_started's receivers, the chain with the view, log_response (>= 400), response.close
    assert len(trips) <= 4, trips
    headers = {k.lower(): v for k, v in response["headers"]}
    assert headers[b"x-frame-options"] == b"DENY"  # the middleware still ran
    assert b"error" in response["body"]


@pytest.mark.django_db(transaction=True)
async def test_djangos_own_handler_took_many_more_trips(trips) -> None:
    stock = ASGIHandler()
    response = await _get(stock, "/v1/no-such-path")
    assert response["status"] == 404
    assert len(trips) >= 10, trips  # 15 with our middleware: what OneTripASGIHandler saves


@pytest.mark.django_db(transaction=True)
async def test_pages_with_sessions_and_csrf_still_work(trips) -> None:
    response = await _get(OneTripASGIHandler(), "/accounts/login/")
    assert response["status"] == 200
    cookies = [v for k, v in response["headers"] if k.lower() == b"set-cookie"]
    assert any(c.startswith(b"csrftoken=") for c in cookies)


@pytest.fixture
def request_threads() -> Any:
    """The thread each request's request_started receivers ran on (the request's own thread)."""
    seen: list[threading.Thread] = []

    def record(**kwargs: Any) -> None:
        seen.append(threading.current_thread())

    request_started.connect(record, dispatch_uid="test-request-threads")
    yield seen
    request_started.disconnect(dispatch_uid="test-request-threads")


@pytest.mark.django_db(transaction=True)
async def test_requests_one_after_another_reuse_one_thread(request_threads) -> None:
    handler = OneTripASGIHandler()
    for _ in range(3):
        assert (await _get(handler, "/v1/no-such-path"))["status"] == 404
    assert len(request_threads) == 3
    assert len(set(request_threads)) == 1  # Django's own handler starts a thread per request
    assert handler.threads.idle() == 1


@pytest.mark.django_db(transaction=True)
async def test_requests_at_the_same_time_each_have_their_own_thread(request_threads) -> None:
    handler = OneTripASGIHandler()
    handler.threads.keep = 1
    both_in = threading.Barrier(2, timeout=5)  # broken (and the test fails) if they shared a thread

    def wait_for_the_other(**kwargs: Any) -> None:
        both_in.wait()

    request_started.connect(wait_for_the_other, dispatch_uid="test-both-in")
    try:
        first, second = await asyncio.gather(
            _get(handler, "/v1/no-such-path"), _get(handler, "/v1/no-such-path")
        )
    finally:
        request_started.disconnect(dispatch_uid="test-both-in")
    assert first["status"] == second["status"] == 404
    assert len(set(request_threads)) == 2
    assert handler.threads.idle() == 1  # the thread beyond `keep` ended with its request


@pytest.mark.django_db(transaction=True)
async def test_a_lent_thread_keeps_no_database_connection_between_requests() -> None:
    handler = OneTripASGIHandler()
    opened: list[object] = []
    connection_created.connect(
        lambda **kw: opened.append(kw["connection"]), weak=False, dispatch_uid="t-open"
    )
    try:
        # an unknown key: looked up in the database
        response = await _get(
            handler, "/v1/assistants", [(b"authorization", b"Bearer sk-" + secrets.token_hex(24).encode())]
        )
    finally:
        connection_created.disconnect(dispatch_uid="t-open")
    assert response["status"] == 401
    assert opened  # the request did use a connection of its own thread
    (executor,) = handler.threads._idle
    # CONN_MAX_AGE=0: request_finished closed it on the request's thread, as under a threaded WSGI server
    assert executor.submit(lambda: connections["default"].connection).result() is None
