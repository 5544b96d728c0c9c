"""ASGI entry point: HTTP through Django, websockets through Channels.

TrustedProxies first (the client address and scheme, honoured from TRUSTED_PROXIES only), then the
websocket origin check, which needs the scheme it settled.
"""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_asgi_app = get_asgi_application()

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
