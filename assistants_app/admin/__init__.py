"""The staff admin (Django admin requires is_staff): assistants, operations history, files, keys."""

from __future__ import annotations

from django.contrib import admin

from . import accounts, assistants, feedback, history, index_notices, keys, run_history, storage, usage

admin.site.site_header = "Assistants administration"
admin.site.site_title = "Assistants admin"
index_notices.install(admin.site)
usage.install(admin.site)

__all__ = ["accounts", "assistants", "feedback", "history", "keys", "run_history", "storage"]
