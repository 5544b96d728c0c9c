"""The staff admin (Django admin requires is_staff): assistants, operations history, files, keys."""

from __future__ import annotations

from django.contrib import admin

from . import assistants, feedback, history, keys, sandbox_status, storage

admin.site.site_header = "Assistants administration"
admin.site.site_title = "Assistants admin"
sandbox_status.install(admin.site)

__all__ = ["assistants", "feedback", "history", "keys", "storage"]
