"""Websocket origins, checked exactly as Django's CSRF middleware checks a POST's Origin header.

A browser opens a websocket to any site with the user's cookies, so the handshake's Origin must be
this site: the same scheme, host and port as the request's Host (and http/https to match ws/wss), or
one of CSRF_TRUSTED_ORIGINS. Channels' AllowedHostsOriginValidator compared only the host name, so a
page at http://127.0.0.1:1 was accepted by a server on another port.
"""

from __future__ import annotations

from typing import Any

from channels.security.websocket import WebsocketDenier
from django.http import HttpRequest, HttpResponse
from django.middleware.csrf import CsrfViewMiddleware


class _HandshakeRequest(HttpRequest):
    def __init__(self, scope: dict[str, Any]) -> None:
        super().__init__()
        self._secure = scope.get("scheme") in ("wss", "https")
        for name, value in scope.get("headers", []):
            key = name.decode("latin1").upper().replace("-", "_")
            self.META[f"HTTP_{key}"] = value.decode("latin1")
        server = scope.get("server") or (None, None)
        if server[0]:
            self.META["SERVER_NAME"], self.META["SERVER_PORT"] = str(server[0]), str(server[1] or "")

    def _get_scheme(self) -> str:
        return "https" if self._secure else "http"


def _no_response(request: HttpRequest) -> HttpResponse:
    return HttpResponse()


def origin_allowed(scope: dict[str, Any]) -> bool:
    request = _HandshakeRequest(scope)
    if "HTTP_ORIGIN" not in request.META:
        # Every browser sends Origin on a websocket handshake; without one, refuse, as before.
        return False
    # Django's own rule (CsrfViewMiddleware._origin_verified): Host (validated against
    # ALLOWED_HOSTS) with the request's scheme, or CSRF_TRUSTED_ORIGINS.
    try:
        return bool(CsrfViewMiddleware(_no_response)._origin_verified(request))  # type: ignore[attr-defined]
    except KeyError:  # neither a Host header nor a server address: nothing to compare with
        return False


class SameOriginValidator:
    """Channels middleware: refuse a websocket handshake from another origin."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.app(scope, receive, send)
