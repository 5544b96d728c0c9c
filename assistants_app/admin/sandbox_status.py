"""The admin index shows what the code interpreter cannot enforce on this server (templates/admin/index.html)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse


def warnings() -> list[str]:
    from assistants_app.tools.code_interpreter import sandbox

    if not sandbox.available():
        return []  # the code interpreter cannot run at all; each execution says why
    return sandbox.status()


def install(site: admin.AdminSite) -> None:
    original = site.index

    def index(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        return original(request, {"sandbox_warnings": warnings(), **(extra_context or {})})

    site.index = index  # type: ignore[method-assign]
