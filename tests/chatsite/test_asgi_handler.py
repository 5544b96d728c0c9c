"""HTTP requests make one trip to a thread for the whole middleware chain and the view (issue 13).

Django's stock ASGIHandler runs each MiddlewareMixin hook through its own `sync_to_async`: about a
dozen loop <-> thread round trips per request, most of the ~3 ms of server CPU even a 404 cost.
"""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import SyncToAsync
from channels.testing import HttpCommunicator
from django.core.handlers.asgi import ASGIHandler

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


async def _get(app: Any, path: str) -> dict[str, Any]:
    comm = HttpCommunicator(app, "GET", path, headers=[(b"host", b"localhost")])
    response: dict[str, Any] = await comm.get_response(timeout=10)
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
