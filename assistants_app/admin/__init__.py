"""The staff admin (Django admin requires is_staff): assistants, operations history, files, keys."""

from __future__ import annotations

from django.contrib import admin

from . import assistants, history, keys, storage

admin.site.site_header = "Assistants administration"
admin.site.site_title = "Assistants admin"

__all__ = ["assistants", "history", "keys", "storage"]
