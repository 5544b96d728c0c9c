"""ASGI entry point: HTTP through Django, websockets through Channels.

HTTP goes through Django's handler with the middleware chain in one trip to a thread
(server/asgi_handler.py). TrustedProxies first (the client address and scheme, honoured from
TRUSTED_PROXIES only), then the websocket origin check, which needs the scheme it settled.
"""

from __future__ import annotations

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django.setup(set_prefix=False)  # as django.core.asgi.get_asgi_application() does

from assistants_app.server.asgi_handler import OneTripASGIHandler  # noqa: E402

django_asgi_app = OneTripASGIHandler()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from assistants_app.server.origins import SameOriginValidator  # noqa: E402
from assistants_app.server.proxies import TrustedProxies  # noqa: E402
from assistants_app.web.routing import websocket_urlpatterns  # noqa: E402

application = TrustedProxies(
    ProtocolTypeRouter(
        {
            "http": django_asgi_app,
            "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
        }
    )
)
