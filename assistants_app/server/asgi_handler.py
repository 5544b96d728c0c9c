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

Django also gives every request a thread of its own (`ThreadSensitiveContext()`: a new one-thread
executor per request, shut down at its end). Starting and joining that thread cost ~0.25 ms of CPU
per request, so the threads are lent from a pool instead (asgiref's `ThreadSensitiveContext` with a
caller-owned executor): one request at a time per thread, as before, and as under a threaded WSGI
server, the thread's database connection then follows Django's request_started/request_finished
rules (CONN_MAX_AGE) rather than dying with the thread.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.handlers.asgi import ASGIHandler

# Threads kept for the next requests once a burst is over; a burst larger than this starts threads
# of its own (as Django does for every request), which end with their request.
KEEP_IDLE_THREADS = 32


class RequestThreads:
    """One-thread executors lent to one request at a time. Used from the event loop only."""

    def __init__(self, keep: int = KEEP_IDLE_THREADS) -> None:
        self.keep = keep
        self._idle: list[ThreadPoolExecutor] = []

    def lend(self) -> ThreadPoolExecutor:
        if self._idle:
            return self._idle.pop()
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, executor: ThreadPoolExecutor) -> None:
        # A request cancelled while its view still runs leaves the call queued ahead of the next
        # request's, which then waits for it on the same thread: still one request at a time.
        if len(self._idle) < self.keep:
            self._idle.append(executor)
        else:
            executor.shutdown(wait=False)

    def idle(self) -> int:
        return len(self._idle)


class OneTripASGIHandler(ASGIHandler):
    def __init__(self) -> None:
        super().__init__()
        self.threads = RequestThreads()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.threads.lend()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.threads.give_back(executor)

    def load_middleware(self, is_async: bool = False) -> None:
        super().load_middleware(is_async=False)
        handler: Any = self  # django-stubs does not declare the chain BaseHandler builds
        handler._middleware_chain = sync_to_async(handler._middleware_chain, thread_sensitive=True)
