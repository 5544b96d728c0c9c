"""The assistant editor: model, instructions, tools, response format, backend, retrieval files."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from assistants_app.models import Assistant
from assistants_app.services import assistants, function_endpoints

from . import model_choices
from .common import admin_link, error_message, pretty_json
from .endpoints import FunctionEndpointInline
from .forms import AssistantForm


@admin.register(Assistant)
class AssistantAdmin(admin.ModelAdmin[Assistant]):
    form = AssistantForm
    inlines = [FunctionEndpointInline]
    list_display = (
        "name",
        "id",
        "model",
        "is_default",
        "chat_visible",
        "tool_summary",
        "backend",
        "owner",
        "created_at",
    )
    list_filter = ("is_default", "chat_visible")
    search_fields = ("id", "name", "model", "description")
    readonly_fields = ("id", "owner", "created_at", "tool_resources_display", "retrieval_files_status")
    fieldsets = (
        (None, {"fields": ("name", "description", "model", "is_default", "chat_visible", "instructions")}),
        ("Sampling", {"fields": ("temperature", "top_p", "response_format_type", "response_format_schema")}),
        ("Tools", {"fields": ("enable_file_search", "enable_code_interpreter", "functions")}),
        (
            "Retrieval files",
            {"fields": ("retrieval_files", "retrieval_files_status", "tool_resources_display")},
        ),
        ("Model backend", {"fields": ("backend_base_url", "backend_api_key_env", "accepts_images")}),
        ("Record", {"fields": ("id", "owner", "created_at"), "classes": ("collapse",)}),
    )

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Assistant]]:
        form = super().get_form(request, obj, change=change, **kwargs)
        choices = model_choices.model_choices(obj)
        return type(form.__name__, (form,), {"model_choices": choices})

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        if request.method == "GET":
            obj = self.get_object(request, object_id)
            warning = function_endpoints.chat_dead_end_warning(obj) if obj is not None else None
            if warning:
                self.message_user(request, warning, messages.WARNING)
        return super().change_view(request, object_id, form_url, extra_context)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        # After the endpoints are saved. "Save and continue" lands on the change page, which warns.
        warning = function_endpoints.chat_dead_end_warning(form.instance)
        if warning and "_continue" not in request.POST:
            self.message_user(request, warning, messages.WARNING)

    def save_model(self, request: HttpRequest, obj: Assistant, form: Any, change: bool) -> None:
        store, rows = assistants.save_staff_assistant(
            obj, staff=request.user, change=change, uploads=form.cleaned_data.get("retrieval_files") or []
        )
        if store is None:
            return
        self.message_user(
            request,
            f"{len(rows)} file(s) added to vector store {store.id}; indexing runs in the background.",
            messages.SUCCESS,
        )
        if not any(t.get("type") == "file_search" for t in obj.tools or []):
            self.message_user(
                request,
                "File search is off for this assistant: enable it to let runs search these files.",
                messages.WARNING,
            )

    # --- display -------------------------------------------------------------------------------------
    @admin.display(description="tools")
    def tool_summary(self, obj: Assistant) -> str:
        names = [
            t["function"].get("name", "?") if t.get("type") == "function" else t.get("type", "?")
            for t in obj.tools or []
        ]
        return ", ".join(names) or "-"

    @admin.display(description="backend")
    def backend(self, obj: Assistant) -> str:
        return obj.backend_base_url or "(server default)"

    @admin.display(description="Tool resources")
    def tool_resources_display(self, obj: Assistant) -> SafeString | str:
        return pretty_json(obj.tool_resources)

    @admin.display(description="Indexing status")
    def retrieval_files_status(self, obj: Assistant) -> SafeString | str:
        rows = assistants.retrieval_files(obj)
        if not rows:
            return "No retrieval files yet."
        body = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    admin_link(r, r.file.filename),
                    r.file.bytes,
                    r.status,
                    r.chunk_count,
                    error_message(r.last_error) or "-",
                )
                for r in rows
            ),
        )
        return format_html(
            "<table><thead><tr><th>file</th><th>bytes</th><th>status</th><th>chunks</th><th>error</th></tr>"
            "</thead><tbody>{}</tbody></table>",
            body,
        )
