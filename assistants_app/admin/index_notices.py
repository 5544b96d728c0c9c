"""The admin index shows what the code interpreter cannot enforce on this server, and how many
sign-ups wait for approval (templates/admin/index.html)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse

from assistants_app.services import accounts


def warnings() -> list[str]:
    from assistants_app.tools.code_interpreter import sandbox

    if not sandbox.available():
        return []  # the code interpreter cannot run at all; each execution says why
    return sandbox.status()


def install(site: admin.AdminSite) -> None:
    original = site.index

    def index(request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        context: dict[str, Any] = {"sandbox_warnings": warnings()}
        if request.user.has_perm("auth.change_user"):
            context["waiting_signups"] = accounts.waiting_for_approval().count()
            context["waiting_signups_url"] = accounts.waiting_list_path()
        return original(request, {**context, **(extra_context or {})})

    site.index = index  # type: ignore[method-assign]
