"""An expired session, seen from an open chat page: nothing the user typed is lost.

A request from the page (HTMX) whose session has ended gets 401 with a small "sign in again"
fragment, retargeted (HX-Retarget) to the page's session notice instead of being swapped under the
composer; the page keeps its draft (app.js, localStorage per conversation) and the link returns to
the same conversation (?next=), where the draft is restored. A stale CSRF token (the user signed in
again in another tab, which rotates it) gets the same treatment with a "reload" link. Full-page
requests keep Django's usual redirect to the login page.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.csrf import csrf_failure as django_csrf_failure


def _is_htmx(request: HttpRequest) -> bool:
    return request.headers.get("HX-Request") == "true"


def _back_to(request: HttpRequest) -> str:
    """The page the request came from (the conversation), if it is ours; else the chat."""
    current = request.headers.get("HX-Current-URL", "")
    path = urlsplit(current).path if current else ""
    if path and url_has_allowed_host_and_scheme(path, allowed_hosts=None):
        query = urlsplit(current).query
        return path + (f"?{query}" if query else "")
    return reverse("chat")


def _notice(request: HttpRequest, kind: str, status: int) -> HttpResponse:
    back = _back_to(request)
    html = render_to_string(
        "chat/session.html",
        {"kind": kind, "login_url": f"{reverse('login')}?{urlencode({'next': back})}", "back": back},
    )
    response = HttpResponse(html, status=status)
    response["HX-Retarget"] = "#session-notice"
    response["HX-Reswap"] = "innerHTML"
    response["HX-Trigger"] = "chat:session-ended" if kind == "signed_out" else "chat:page-stale"
    return response


def chat_login_required[V: Callable[..., HttpResponseBase]](view: V) -> V:
    @wraps(view)
    def wrapped(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if request.user.is_authenticated:
            return view(request, *args, **kwargs)
        if _is_htmx(request):
            return _notice(request, "signed_out", 401)
        return redirect_to_login(request.get_full_path())

    return wrapped  # type: ignore[return-value]


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    if _is_htmx(request):
        kind = "signed_out" if not request.user.is_authenticated else "stale"
        return _notice(request, kind, 403)
    return django_csrf_failure(request, reason=reason)
