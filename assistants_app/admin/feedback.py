"""Users' thumbs up/down on chat replies, read-only for staff."""

from __future__ import annotations

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator

from assistants_app.models import Feedback

from .common import ReadOnlyAdmin


@admin.register(Feedback)
class FeedbackAdmin(ReadOnlyAdmin[Feedback]):
    list_display = ("updated_at", "rating", "user", "reply", "comment_short")
    list_filter = ("rating", "updated_at")
    search_fields = ("comment", "user__username", "message__id")
    list_select_related = ("user", "message")
    fields = ("rating", "comment", "user", "reply", "reply_text", "created_at", "updated_at")
    readonly_fields = fields

    @admin.display(description="Reply")
    def reply(self, obj: Feedback) -> SafeString:
        url = reverse("admin:assistants_app_message_change", args=[obj.message_id])
        return format_html('<a href="{}">{}</a>', url, obj.message_id)

    @admin.display(description="Reply text")
    def reply_text(self, obj: Feedback) -> str:
        return Truncator(obj.message.text).chars(2000)

    @admin.display(description="Comment")
    def comment_short(self, obj: Feedback) -> str:
        return Truncator(obj.comment).chars(120)
