"""Which address a request comes from: the one home for that answer.

By default no proxy is trusted: the client is the TCP peer, and X-Forwarded-For / X-Forwarded-Proto
are ignored (anyone can send them). With TRUSTED_PROXIES (addresses or CIDR networks), those headers
are honoured only on connections from one of them, by uvicorn's ProxyHeadersMiddleware (maintained,
and the reference implementation of this for ASGI): the client is the right-most X-Forwarded-For
entry that is not itself a trusted proxy, and the scheme comes from X-Forwarded-Proto. Done at the
ASGI level, so that Django's REMOTE_ADDR and request.is_secure(), and the websocket scope that the
origin check reads, all agree.

Login lockouts (django-axes, AXES_CLIENT_IP_CALLABLE) and the API-key throttle read the result
through client_address().
"""

from __future__ import annotations

import ipaddress
from typing import Any

from django.conf import settings
from django.http import HttpRequest

Scope = dict[str, Any]


class TrustedProxies:
    """ASGI middleware: applies proxy headers from TRUSTED_PROXIES only; a no-op when there are none."""

    def __init__(self, app: Any, trusted: list[str] | None = None) -> None:
        self.app = app
        trusted = list(settings.TRUSTED_PROXIES if trusted is None else trusted)
        self.inner: Any = app
        if trusted:
            from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

            self.inner = ProxyHeadersMiddleware(_KeepValidClient(app), trusted_hosts=trusted)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] in ("http", "websocket") and self.inner is not self.app:
            scope = {**scope, "peer": scope.get("client")}
        await self.inner(scope, receive, send)


class _KeepValidClient:
    """A trusted proxy that forwards garbage in X-Forwarded-For must not make it the client address
    (it would be stored, e.g. by the login lockout's IP field): keep the peer then."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        client = scope.get("client")
        if client and not _is_ip(client[0]):
            scope = {**scope, "client": scope.get("peer")}
        await self.app(scope, receive, send)


def _is_ip(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def client_address(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, which TrustedProxies has already resolved."""
    return str(request.META.get("REMOTE_ADDR") or "")
