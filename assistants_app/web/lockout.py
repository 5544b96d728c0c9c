"""Login lockouts with django-axes: the parts this project configures.

Axes counts failed logins per username and per client address (AXES_LOCKOUT_PARAMETERS) in its
database tables, so the count is shared by every server process, and refuses further attempts for
LOGIN_LOCKOUT_SECONDS once either reaches LOGIN_FAILURE_LIMIT. The admin's login uses the same
authenticate() and is covered too.
"""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.contrib.auth import get_user_model
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class LockoutBackend(AxesStandaloneBackend):  # type: ignore[misc]  # django-axes has no type hints
    """Axes' check, for logins that come from an HTTP request.

    authenticate() without a request (management commands, the test client's login()) cannot be
    guessed at from outside, and axes would raise on it; it is left to the next backend.
    """

    def authenticate(self, request: HttpRequest | None, *args: Any, **kwargs: Any) -> None:
        if request is None:
            return None
        super().authenticate(request, *args, **kwargs)
        return None


def username_of(request: HttpRequest, credentials: dict[str, Any] | None) -> str:
    """The username an attempt was for, as the form cleaned it; bounded to the model's field so that
    a huge posted name never reaches axes' 255-character column."""
    field = get_user_model().USERNAME_FIELD
    value = (credentials or {}).get(field)
    if value is None:
        value = request.POST.get(field, "")
    return str(value)[:150]


def _wait_words(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return f"{minutes} minute{'s' if minutes != 1 else ''}"


def lockout_response(request: HttpRequest, original: Any = None, credentials: Any = None) -> HttpResponse:
    """The login page's answer while locked out: the page, with a message in plain words (429)."""
    seconds = int(settings.LOGIN_LOCKOUT_SECONDS)
    response = render(
        request,
        "registration/locked_out.html",
        {"wait": _wait_words(seconds), "failure_limit": settings.AXES_FAILURE_LIMIT},
        status=429,
    )
    response["Retry-After"] = str(seconds)
    return response
