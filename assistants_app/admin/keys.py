"""API keys: list, revoke, and create one for a user (the key is shown once and never stored)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from assistants_app.models import ApiKey
from assistants_app.services.keys import create_key, revoke_key

from .forms import ApiKeyCreateForm


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin[ApiKey]):
    list_display = ("prefix_shown", "name", "user", "created_at", "last_used_at", "revoked_at", "active")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), ("user", admin.RelatedOnlyFieldListFilter))
    search_fields = ("prefix", "name", "user__username")
    list_select_related = ("user",)
    actions = ("revoke_selected",)
    readonly_fields = ("prefix_shown", "user", "created_at", "last_used_at", "revoked_at")

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[ApiKey]]:
        if obj is None:
            kwargs["form"] = ApiKeyCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        if obj is None:
            return ["user", "name"]
        return ["prefix_shown", "name", "user", "created_at", "last_used_at", "revoked_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> tuple[str, ...]:
        return self.readonly_fields if obj is not None else ()

    def has_delete_permission(self, request: HttpRequest, obj: ApiKey | None = None) -> bool:
        # Revoking keeps the row (who had access, until when); deleting would erase that.
        return False

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        new = create_key(form.cleaned_data["user"], name=form.cleaned_data.get("name") or "")
        obj.pk, obj.prefix, obj.digest, obj.created_at = (
            new.key.pk,
            new.key.prefix,
            new.key.digest,
            new.key.created_at,
        )
        # Only a digest is stored: this message is the one time anyone sees the key.
        request._new_api_key = new.raw  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: str | None = None
    ) -> HttpResponse:
        raw = getattr(request, "_new_api_key", None)
        if raw is None:
            return super().response_add(request, obj, post_url_continue)
        # Rendered in this response rather than after a redirect: a redirect would park the key in
        # the message storage (a cookie or the session) until the next page displays it.
        messages.success(request, f"API key for {obj.user}: {raw} — copy it now, it will not be shown again.")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API key created",
            "key": obj,
        }
        response = TemplateResponse(request, "admin/assistants_app/apikey/created.html", context)
        response["Cache-Control"] = "no-store"
        return response

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("assistants_app.change_apikey")

    @admin.action(description="Revoke selected keys", permissions=["revoke"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        ids = list(queryset.filter(revoked_at__isnull=True).values_list("id", flat=True))
        for key_id in ids:
            revoke_key(key_id)
        self.message_user(request, f"Revoked {len(ids)} key(s).", messages.SUCCESS)

    @admin.display(description="key", ordering="prefix")
    def prefix_shown(self, obj: ApiKey) -> str:
        return f"{obj.prefix}…"

    @admin.display(description="active", boolean=True)
    def active(self, obj: ApiKey) -> bool:
        return obj.revoked_at is None
