"""Django's ASGI handler, with the middleware chain and the view run in one trip to a thread.

Django's own ASGIHandler loads the middleware in async mode. Every middleware written as
MiddlewareMixin (Django's session, CSRF, auth, messages, common, clickjacking) then runs its
`process_request` and its `process_response` each through `sync_to_async`, and `process_view` too:
about a dozen round trips between the event loop and the request's thread per request, on top of the
one for a sync view. Each round trip is a thread wake-up and an event-loop wake-up. Measured with
bench/bench_request_floor.py, they were most of the ~3 ms of server CPU that even a 404 cost.

Here the chain is loaded in sync mode (as under WSGI) and called through one `sync_to_async` on the
request's thread-sensitive thread, so a request makes one trip. Async views still work: Django's sync
path runs them with `async_to_sync`. What comes back to the event loop is the response: a streaming
one (SSE) is still written from there, by Django's `send_response`, without a thread.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.core.handlers.asgi import ASGIHandler


class OneTripASGIHandler(ASGIHandler):
    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        handler: Any = self  # django-stubs does not declare the chain BaseHandler builds
        handler._middleware_chain = sync_to_async(handler._middleware_chain, thread_sensitive=True)
