"""Issue 9, items 9 and 10a: websocket origins are compared by scheme, host and port (Django's CSRF
rule), and X-Forwarded-For / -Proto are believed only from TRUSTED_PROXIES."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from assistants_app.server.origins import origin_allowed
from assistants_app.server.proxies import TrustedProxies

pytestmark = pytest.mark.django_db(transaction=True)


def _scope(origin: str | None, host: str = "127.0.0.1:8000", scheme: str = "ws") -> dict[str, Any]:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    return {"type": "websocket", "scheme": scheme, "headers": headers, "server": ("127.0.0.1", 8000)}


def test_origin_must_match_scheme_host_and_port(settings) -> None:
    settings.ALLOWED_HOSTS = ["127.0.0.1", "chat.example.com"]
    settings.CSRF_TRUSTED_ORIGINS = ["https://trusted.example.com"]
    assert origin_allowed(_scope("http://127.0.0.1:8000"))  # positive control: the page's own origin
    assert not origin_allowed(_scope("http://127.0.0.1:1"))  # another port on the same host
    assert not origin_allowed(_scope("https://127.0.0.1:8000"))  # another scheme
    assert not origin_allowed(_scope("http://127.0.0.1"))  # the default port is another port
    assert not origin_allowed(_scope("http://evil.example"))
    assert not origin_allowed(_scope(None))
    assert not origin_allowed(_scope("null"))
    # Over TLS (wss), the page is https.
    assert origin_allowed(_scope("https://chat.example.com", host="chat.example.com", scheme="wss"))
    assert not origin_allowed(_scope("http://chat.example.com", host="chat.example.com", scheme="wss"))
    # CSRF_TRUSTED_ORIGINS are honoured, as for POSTs.
    assert origin_allowed(_scope("https://trusted.example.com"))
    # A Host that is not in ALLOWED_HOSTS is not "the same origin", even if Origin matches it.
    assert not origin_allowed(_scope("http://evil.example:8000", host="evil.example:8000"))


async def test_cross_port_origin_is_refused_by_the_application(alice) -> None:
    from chatsite.asgi import application

    client = Client()
    await sync_to_async(client.force_login)(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    headers = [(b"cookie", cookie), (b"host", b"127.0.0.1:8000")]
    ok = WebsocketCommunicator(
        application, "/ws/chat/", headers=[*headers, (b"origin", b"http://127.0.0.1:8000")]
    )
    connected, _ = await ok.connect()
    assert connected is True
    await ok.disconnect()
    other_port = WebsocketCommunicator(
        application, "/ws/chat/", headers=[*headers, (b"origin", b"http://127.0.0.1:1")]
    )
    connected, _ = await other_port.connect()
    assert connected is False


# --- trusted proxies ------------------------------------------------------------------------------
async def _seen(
    trusted: list[str], peer: str, headers: list[tuple[bytes, bytes]], kind: str = "http"
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def app(scope, receive, send):
        seen.update(scope)

    scope = {
        "type": kind,
        "scheme": "http" if kind == "http" else "ws",
        "client": (peer, 5555),
        "headers": headers,
    }
    await TrustedProxies(app, trusted=trusted)(scope, None, None)
    return seen


FORWARDED = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.9"), (b"x-forwarded-proto", b"https")]


async def test_by_default_forwarded_headers_are_ignored() -> None:
    seen = await _seen([], "198.51.100.1", FORWARDED)
    assert seen["client"] == ("198.51.100.1", 5555) and seen["scheme"] == "http"


async def test_forwarded_headers_are_honoured_only_from_a_trusted_proxy() -> None:
    trusted = ["10.0.0.0/8", "192.0.2.1"]
    # From a trusted proxy: the right-most untrusted entry is the client (not the spoofable left one).
    seen = await _seen(trusted, "10.1.2.3", FORWARDED)
    assert seen["client"][0] == "203.0.113.9" and seen["scheme"] == "https"
    seen = await _seen(trusted, "192.0.2.1", [(b"x-forwarded-for", b"203.0.113.9, 10.0.0.5")])
    assert seen["client"][0] == "203.0.113.9"
    # From anyone else: ignored.
    seen = await _seen(trusted, "198.51.100.1", FORWARDED)
    assert seen["client"][0] == "198.51.100.1" and seen["scheme"] == "http"
    # Websockets too (the origin check needs the right scheme).
    seen = await _seen(trusted, "10.1.2.3", FORWARDED, kind="websocket")
    assert seen["scheme"] == "wss"
    # Garbage from a trusted proxy never becomes the address.
    seen = await _seen(trusted, "10.1.2.3", [(b"x-forwarded-for", b"not-an-address")])
    assert seen["client"] == ("10.1.2.3", 5555)


def test_bad_trusted_proxies_setting_refuses_to_start() -> None:
    import os
    import subprocess
    import sys

    env = {**os.environ, "TRUSTED_PROXIES": "10.0.0.0/8,proxy.example"}
    done = subprocess.run(
        [sys.executable, "-c", "import chatsite.settings"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0 and "proxy.example" in done.stderr
