"""Helpers shared by the admin modules: read-only history admins, pretty JSON, token usage, links."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.db.models import Model
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

PRE_STYLE = "white-space: pre-wrap; margin: 0; max-width: 70em; overflow-x: auto"


class ReadOnlyAdmin[M: Model](admin.ModelAdmin[M]):
    """History is written by the engine and the API only: staff look, and act through explicit actions."""

    # History tables grow without bound: skip the unfiltered COUNT(*) on every filtered page.
    show_full_result_count = False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def pretty_json(value: Any) -> SafeString | str:
    if value in (None, "", [], {}):
        return "-"
    text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=False, default=str)
    return format_html('<pre style="{}">{}</pre>', PRE_STYLE, text)


def maybe_json(text: Any) -> Any:
    """Tool arguments and outputs are JSON inside strings: decode them for display when they parse."""
    if isinstance(text, str):
        try:
            return json.loads(text)
        except ValueError:
            return text
    return text


def pretty_text_or_json(value: Any) -> SafeString | str:
    decoded = maybe_json(value)
    if isinstance(decoded, str):
        return format_html('<pre style="{}">{}</pre>', PRE_STYLE, decoded) if decoded else "-"
    return pretty_json(decoded)


def usage_tokens(usage: Any, kind: str = "total_tokens") -> int | None:
    value = usage.get(kind) if isinstance(usage, dict) else None
    return value if isinstance(value, int) else None


def admin_link(obj: Model | None, text: str | None = None) -> SafeString | str:
    if obj is None:
        return "-"
    meta = obj._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, text or str(obj))


def changelist_link(model: type[Model], text: str, **filters: Any) -> SafeString:
    meta = model._meta
    url = reverse(f"admin:{meta.app_label}_{meta.model_name}_changelist")
    query = urlencode(filters)
    return format_html('<a href="{}?{}">{}</a>', url, query, text)


def error_message(last_error: Any) -> str:
    if isinstance(last_error, dict):
        code, message = last_error.get("code"), last_error.get("message")
        return f"{code}: {message}" if code and message else str(message or code or last_error)
    return "" if last_error is None else str(last_error)
