"""Static files through the async-capable WhiteNoise: served as before, and the middleware chain
stays async under ASGI (no request bounces between the event loop and threads before its view)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.handlers.asgi import ASGIHandler
from django.test import AsyncClient, override_settings


def test_the_asgi_middleware_chain_needs_no_adapting(monkeypatch: pytest.MonkeyPatch) -> None:
    """Django wraps a middleware whose mode differs from its neighbour's in sync_to_async or
    async_to_sync while it loads the chain; with every middleware async-capable it wraps none.
    (Sync `process_view` hooks, such as CSRF's, are wrapped whatever the chain: not counted.)"""
    from django.core.handlers import base

    adapted: list[str] = []

    def recording(real: Any) -> Any:
        def wrap(fn: Any, *args: Any, **kwargs: Any) -> Any:
            if not getattr(fn, "__name__", "").startswith("process_"):
                adapted.append(repr(fn))
            return real(fn, *args, **kwargs)

        return wrap

    for name in ("sync_to_async", "async_to_sync"):
        monkeypatch.setattr(base, name, recording(getattr(base, name)))
    ASGIHandler()  # loads the middleware chain in async mode
    assert adapted == []


@pytest.mark.django_db
@pytest.mark.parametrize("autorefresh", [False, True])
async def test_static_files_are_served_and_the_rest_passes_through(autorefresh: bool, settings) -> None:
    with override_settings(WHITENOISE_AUTOREFRESH=autorefresh, WHITENOISE_USE_FINDERS=True):
        client = AsyncClient()
        response = await client.get("/static/css/app.css")
        assert response.status_code == 200 and response["Content-Type"].startswith("text/css")
        assert b"{" in response.getvalue()
        assert (await client.get("/static/css/no-such-file.css")).status_code == 404
        assert (await client.get("/accounts/login/")).status_code == 200
