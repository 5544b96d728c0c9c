"""WhiteNoise as an async-capable Django middleware.

whitenoise 6's middleware is sync-only. Under ASGI, Django then runs the middleware chain around it
in sync mode: every request went loop → thread (SecurityMiddleware, WhiteNoise) → back to the loop
through AsyncToSync (the async-capable middlewares after it) → a thread again for the view: two extra
thread hand-offs, and an AsyncToSync, per request, paid by every API call and chat send. This
subclass keeps WhiteNoise's own file table and serving; only the calling convention changes. A
static file is looked up in memory (or, with autorefresh in development, on disk in a thread) and
served from a thread; everything else goes straight to the next async handler.

(`servestatic`, a fork with native async support, would also do; one small subclass of the library
we already use was preferred to a second static-file stack.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):  # type: ignore[misc]  # whitenoise has no hints
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(get_response, *args, **kwargs)
        self._async = iscoroutinefunction(get_response)
        if self._async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self._async:
            return self._acall(request)
        return super().__call__(request)

    async def _acall(self, request: HttpRequest) -> HttpResponseBase:
        if self.autorefresh:
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is None:
            response: Awaitable[HttpResponseBase] = self.get_response(request)
            return await response
        served: HttpResponseBase = await sync_to_async(self.serve, thread_sensitive=False)(
            static_file, request
        )
        return served
