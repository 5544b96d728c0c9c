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


def register() -> None:
    checks.register(sandbox_protections, "security")
