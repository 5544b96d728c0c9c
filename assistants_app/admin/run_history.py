"""Read-only operations views over runs and their steps (threads and messages: history.py).

Nothing here writes history; the one action (cancelling runs) goes through services.runs.cancel_run, the
same path as the API and the chat page's stop button.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from assistants_app.errors import InvalidRequest
from assistants_app.models import Run, RunStep
from assistants_app.models.run import ACTIVE_STATUSES
from assistants_app.services import runs

from .common import (
    ReadOnlyAdmin,
    admin_link,
    changelist_link,
    error_message,
    pretty_json,
    pretty_text_or_json,
    usage_tokens,
)


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin[Run]):
    list_display = (
        "id",
        "thread",
        "owner",
        "status",
        "model",
        "created_at",
        "started_at",
        "duration",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "error",
    )
    list_filter = ("status", "model")
    search_fields = ("id", "thread__id", "thread__owner__username", "assistant_ref", "model")
    list_select_related = ("thread__owner",)
    date_hierarchy = "created_at"
    actions = ("cancel_selected",)
    fields = (
        "id",
        "thread_link",
        "owner",
        "assistant_link",
        "assistant_ref",
        "status",
        "model",
        "created_at",
        "started_at",
        "expires_at",
        "completed_at",
        "cancelled_at",
        "failed_at",
        "duration",
        "usage_display",
        "last_error_display",
        "incomplete_details_display",
        "required_action_display",
        "steps_link",
        "instructions",
        "tools_display",
        "tool_resources_display",
        "temperature",
        "top_p",
        "max_prompt_tokens",
        "max_completion_tokens",
        "truncation_strategy_display",
        "response_format_display",
        "tool_choice_display",
        "parallel_tool_calls",
        "metadata_display",
        "attempts",
        "lease_owner",
        "lease_expires_at",
        "streamed",
    )
    readonly_fields = fields

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        # has_change_permission is off (history is read-only), so ask the user's permission itself.
        return request.user.has_perm("assistants_app.change_run")

    @admin.action(description="Cancel selected active runs", permissions=["cancel"])
    def cancel_selected(self, request: HttpRequest, queryset: QuerySet[Run]) -> None:
        done, skipped = 0, 0
        for run in queryset.filter(status__in=ACTIVE_STATUSES):
            try:
                runs.cancel_run(run)
                done += 1
            except InvalidRequest:
                skipped += 1  # finished meanwhile
        skipped += queryset.exclude(status__in=ACTIVE_STATUSES).count()
        self.message_user(request, f"Cancelled {done} run(s).", messages.SUCCESS if done else messages.INFO)
        if skipped:
            self.message_user(request, f"Skipped {skipped} run(s) that were not active.", messages.WARNING)

    @admin.display(description="owner")
    def owner(self, obj: Run) -> Any:
        return obj.thread.owner

    @admin.display(description="duration")
    def duration(self, obj: Run) -> str:
        end = obj.completed_at or obj.failed_at or obj.cancelled_at
        if not obj.started_at or not end:
            return "-"
        return f"{(end - obj.started_at).total_seconds():.1f} s"

    @admin.display(description="prompt")
    def prompt_tokens(self, obj: Run) -> int | None:
        return usage_tokens(obj.usage, "prompt_tokens")

    @admin.display(description="completion")
    def completion_tokens(self, obj: Run) -> int | None:
        return usage_tokens(obj.usage, "completion_tokens")

    @admin.display(description="tokens")
    def total_tokens(self, obj: Run) -> int | None:
        return usage_tokens(obj.usage, "total_tokens")

    @admin.display(description="last error")
    def error(self, obj: Run) -> str:
        return error_message(obj.last_error)[:120] or "-"

    @admin.display(description="thread")
    def thread_link(self, obj: Run) -> SafeString | str:
        return admin_link(obj.thread)

    @admin.display(description="assistant")
    def assistant_link(self, obj: Run) -> SafeString | str:
        return admin_link(obj.assistant)

    @admin.display(description="steps")
    def steps_link(self, obj: Run) -> SafeString:
        return changelist_link(RunStep, "run steps", run__id__exact=obj.id)

    @admin.display(description="usage")
    def usage_display(self, obj: Run) -> SafeString | str:
        return pretty_json(obj.usage)

    @admin.display(description="last error")
    def last_error_display(self, obj: Run) -> SafeString | str:
        return pretty_json(obj.last_error)

    @admin.display(description="incomplete details")
    def incomplete_details_display(self, obj: Run) -> SafeString | str:
        return pretty_json(obj.incomplete_details)

    @admin.display(description="required action")
    def required_action_display(self, obj: Run) -> SafeString | str:
        return pretty_json(obj.required_action)

    @admin.display(description="tools")
    def tools_display(self, obj: Run) -> SafeString | str:
        return pretty_json(obj.tools)

    @admin.display(description="tool resources")
    def tool_resources_display(self, obj: Run) -> SafeString | str:
        return pretty_json(obj.tool_resources)

    @admin.display(description="truncation strategy")
    def truncation_strategy_display(self, obj: Run) -> SafeString | str:
        return pretty_json(obj.truncation_strategy)

    @admin.display(description="response format")
    def response_format_display(self, obj: Run) -> SafeString | str:
        return pretty_json(obj.response_format)

    @admin.display(description="tool choice")
    def tool_choice_display(self, obj: Run) -> SafeString | str:
        return pretty_json(obj.tool_choice)

    @admin.display(description="metadata")
    def metadata_display(self, obj: Run) -> SafeString | str:
        return pretty_json(obj.metadata)


def _tool_call_rows(details: dict[str, Any]) -> list[tuple[Any, ...]]:
    rows = []
    for call in details.get("tool_calls") or []:
        kind = call.get("type", "?")
        body = call.get(kind) or {}
        if kind == "function":
            name, given, output = body.get("name", "?"), body.get("arguments"), body.get("output")
        elif kind == "code_interpreter":
            name, given, output = "code_interpreter", body.get("input"), body.get("outputs")
        elif kind == "file_search":
            name, given, output = "file_search", body.get("ranking_options"), body.get("results")
        else:
            name, given, output = kind, None, body
        rows.append((call.get("id", ""), name, pretty_text_or_json(given), pretty_text_or_json(output)))
    return rows


@admin.register(RunStep)
class RunStepAdmin(ReadOnlyAdmin[RunStep]):
    list_display = ("id", "run", "type", "status", "tool_names", "created_at", "completed_at", "total_tokens")
    list_filter = ("type", "status")
    search_fields = ("id", "run__id", "thread_id_ref")
    list_select_related = ("run",)
    fields = (
        "id",
        "run_link",
        "thread_id_ref",
        "assistant_ref",
        "type",
        "status",
        "created_at",
        "completed_at",
        "cancelled_at",
        "failed_at",
        "expired_at",
        "tool_calls",
        "step_details_display",
        "usage_display",
        "last_error_display",
        "metadata_display",
    )
    readonly_fields = fields

    @admin.display(description="tools")
    def tool_names(self, obj: RunStep) -> str:
        calls = (obj.step_details or {}).get("tool_calls") or []
        names = [
            (c.get("function") or {}).get("name", "?") if c.get("type") == "function" else c.get("type", "?")
            for c in calls
        ]
        return ", ".join(names) or "-"

    @admin.display(description="tokens")
    def total_tokens(self, obj: RunStep) -> int | None:
        return usage_tokens(obj.usage)

    @admin.display(description="run")
    def run_link(self, obj: RunStep) -> SafeString | str:
        return admin_link(obj.run)

    @admin.display(description="tool calls (inputs and outputs)")
    def tool_calls(self, obj: RunStep) -> SafeString | str:
        rows = _tool_call_rows(obj.step_details or {})
        if not rows:
            return "-"
        body = format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", rows)
        return format_html(
            "<table><thead><tr><th>call</th><th>tool</th><th>input</th><th>output</th></tr></thead>"
            "<tbody>{}</tbody></table>",
            body,
        )

    @admin.display(description="step details")
    def step_details_display(self, obj: RunStep) -> SafeString | str:
        return pretty_json(obj.step_details)

    @admin.display(description="usage")
    def usage_display(self, obj: RunStep) -> SafeString | str:
        return pretty_json(obj.usage)

    @admin.display(description="last error")
    def last_error_display(self, obj: RunStep) -> SafeString | str:
        return pretty_json(obj.last_error)

    @admin.display(description="metadata")
    def metadata_display(self, obj: RunStep) -> SafeString | str:
        return pretty_json(obj.metadata)
