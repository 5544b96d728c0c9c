"""The admin's usage report (/admin/usage/): runs and tokens per user, assistant and day
(services/usage.py sums them), linked from the admin index."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path

from assistants_app.services import usage

PERIODS = (1, 7, 30, 90, 365)


def report(site: admin.AdminSite, request: HttpRequest) -> TemplateResponse:
    try:
        days = int(request.GET.get("days", "30"))
    except ValueError:
        days = 30
    if days not in PERIODS:
        days = 30
    groups: tuple[tuple[str, usage.Grouping], ...] = (
        ("Per user", "user"),
        ("Per assistant", "assistant"),
        ("Per day", "day"),
    )
    tables = [(title, usage.totals(group, days=days)) for title, group in groups]
    context = {
        **site.each_context(request),
        "title": "Usage",
        "days": days,
        "periods": PERIODS,
        "tables": tables,
        "budget": usage.daily_budget(),
    }
    return TemplateResponse(request, "admin/usage.html", context)


def install(site: admin.AdminSite) -> None:
    original = site.get_urls

    def get_urls() -> list[URLResolver | URLPattern]:
        view = site.admin_view(lambda request: report(site, request))
        return [path("usage/", view, name="usage"), *original()]

    site.get_urls = get_urls  # type: ignore[method-assign]
