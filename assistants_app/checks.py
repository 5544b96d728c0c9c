"""System checks (`manage.py check`, and the start of migrate/serve): protections missing here."""

from __future__ import annotations

from typing import Any

from django.core import checks


def sandbox_protections(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    from .tools.code_interpreter import sandbox

    if not sandbox.available():
        return []  # no code interpreter at all: executions fail with their own clear message
    return [
        checks.Warning(text, id=f"assistants_app.W00{i}") for i, text in enumerate(sandbox.status(), start=1)
    ]


def function_endpoint_allow_list(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """A bad FUNCTION_ENDPOINTS_ALLOWED_PRIVATE stops the server at start-up rather than refusing
    every endpoint call later."""
    from django.conf import settings

    from .tools.function_endpoints import guard

    try:
        guard.parse_allow_list(settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE)
    except ValueError as exc:
        return [checks.Error(f"FUNCTION_ENDPOINTS_ALLOWED_PRIVATE: {exc}.", id="assistants_app.E101")]
    return []


def register() -> None:
    checks.register(sandbox_protections, "security")
    checks.register(function_endpoint_allow_list, "security")
