"""The site's 500 handler: a database that cannot be had in time is "busy" (503), in plain words.

A burst of requests can exhaust the PostgreSQL pool or outwait SQLite's write lock anywhere: in a view,
but also while the session or the user loads in middleware, before any view runs. Django hands every
uncaught exception of every layer to this one handler (while the exception is being handled), so this
is the one place that tells such a request apart from a real server error.
"""

from __future__ import annotations

import sys

from django.db import OperationalError
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html
from django.views import defaults

from assistants_app.api.errors import error_response
from assistants_app.errors import ServerBusy
from assistants_app.web.views import alert_fragment


def server_error(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]
    if not isinstance(exc, OperationalError):
        return defaults.server_error(request)
    busy = ServerBusy()
    if request.path.startswith("/v1/"):
        return error_response(busy)
    # By header: the exception may come before HtmxMiddleware has set request.htmx.
    if request.headers.get("HX-Request") == "true":
        return alert_fragment(busy.message, 503)
    # No template, no session, no database: any of them may be what is busy.
    page = format_html(
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Busy</title></head>'
        '<body><p role="alert">{}</p><p><a href="{}">Try again</a></p></body></html>',
        busy.message,
        request.get_full_path(),
    )
    response = HttpResponse(page, status=503)
    response["Retry-After"] = "5"
    return response
