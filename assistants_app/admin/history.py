"""Read-only operations views over conversations: threads and messages (runs and their steps:
run_history.py). Nothing here writes history."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, IntegerField, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from assistants_app.models import Message, Run, Thread

from .common import (
    ReadOnlyAdmin,
    admin_link,
    changelist_link,
    pretty_json,
    pretty_text_or_json,
)

PREVIEW_CHARS = 100


@admin.register(Thread)
class ThreadAdmin(ReadOnlyAdmin[Thread]):
    list_display = (
        "id",
        "owner",
        "is_chat",
        "title",
        "created_at",
        "last_activity_at",
        "run_count",
        "total_tokens",
    )
    list_filter = (("owner", admin.RelatedOnlyFieldListFilter), "is_chat")
    search_fields = ("id", "owner__username")
    list_select_related = ("owner",)
    fields = (
        "id",
        "owner",
        "created_at",
        "is_chat",
        "title",
        "last_activity_at",
        "archived_at",
        "run_count",
        "total_tokens",
        "related",
        "metadata_display",
        "tool_resources_display",
    )
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[Thread]:
        # One join to runs carries both aggregates (no fan-out: runs is the only multi-valued join).
        return (
            super()
            .get_queryset(request)
            .annotate(
                _run_count=Count("runs"),
                _total_tokens=Sum(Cast(KeyTextTransform("total_tokens", "runs__usage"), IntegerField())),
            )
        )

    @admin.display(description="runs", ordering="_run_count")
    def run_count(self, obj: Thread) -> int:
        return int(obj._run_count)  # type: ignore[attr-defined]

    @admin.display(description="tokens", ordering="_total_tokens")
    def total_tokens(self, obj: Thread) -> int:
        return int(obj._total_tokens or 0)  # type: ignore[attr-defined]

    @admin.display(description="history")
    def related(self, obj: Thread) -> SafeString:
        return format_html(
            "{} · {}",
            changelist_link(Message, "messages", thread__id__exact=obj.id),
            changelist_link(Run, "runs", thread__id__exact=obj.id),
        )

    @admin.display(description="metadata")
    def metadata_display(self, obj: Thread) -> SafeString | str:
        return pretty_json(obj.metadata)

    @admin.display(description="tool resources")
    def tool_resources_display(self, obj: Thread) -> SafeString | str:
        return pretty_json(obj.tool_resources)


@admin.register(Message)
class MessageAdmin(ReadOnlyAdmin[Message]):
    list_display = ("id", "thread", "role", "status", "preview", "created_at", "run")
    list_filter = ("role", "status")
    search_fields = ("id", "thread__id", "thread__owner__username", "run__id")
    list_select_related = ("thread", "run")
    fields = (
        "id",
        "thread_link",
        "role",
        "status",
        "created_at",
        "completed_at",
        "incomplete_at",
        "run_link",
        "assistant_id",
        "token_count",
        "text",
        "content_display",
        "attachments_display",
        "incomplete_details_display",
        "metadata_display",
    )
    readonly_fields = fields

    @admin.display(description="text")
    def preview(self, obj: Message) -> str:
        text = obj.text
        return text if len(text) <= PREVIEW_CHARS else text[:PREVIEW_CHARS] + "…"

    @admin.display(description="text")
    def text(self, obj: Message) -> SafeString | str:
        return pretty_text_or_json(obj.text) if obj.text else "-"

    @admin.display(description="thread")
    def thread_link(self, obj: Message) -> SafeString | str:
        return admin_link(obj.thread)

    @admin.display(description="run")
    def run_link(self, obj: Message) -> SafeString | str:
        return admin_link(obj.run)

    @admin.display(description="content parts")
    def content_display(self, obj: Message) -> SafeString | str:
        return pretty_json(obj.content)

    @admin.display(description="attachments")
    def attachments_display(self, obj: Message) -> SafeString | str:
        return pretty_json(obj.attachments)

    @admin.display(description="incomplete details")
    def incomplete_details_display(self, obj: Message) -> SafeString | str:
        return pretty_json(obj.incomplete_details)

    @admin.display(description="metadata")
    def metadata_display(self, obj: Message) -> SafeString | str:
        return pretty_json(obj.metadata)
