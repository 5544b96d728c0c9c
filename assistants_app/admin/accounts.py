"""Accounts in the admin: users (approve waiting sign-ups; a user's own limits, such as a daily token
budget; Django's own "Reset password" form sets a password when no mail can be sent) and invitations
(a one-time sign-up link, shown once)."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse

from assistants_app.models import Invitation, UserLimits
from assistants_app.services import accounts


class AwaitingApprovalFilter(admin.SimpleListFilter):
    title = "sign-up approval"
    parameter_name = "approval"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("waiting", "Waiting for approval")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() == "waiting":
            return queryset.filter(pk__in=accounts.waiting_for_approval().values("pk"))
        return queryset


admin.site.unregister(User)


class LimitsInline(admin.StackedInline[UserLimits, User]):
    model = UserLimits
    can_delete = True
    max_num = 1
    extra = 1
    verbose_name = "limits"
    verbose_name_plural = "limits (instead of the server's)"


@admin.register(User)
class AccountAdmin(UserAdmin[User]):
    list_display = ("username", "email", "first_name", "last_name", "is_staff", "is_active", "approval")
    list_filter = (AwaitingApprovalFilter, "is_staff", "is_superuser", "is_active", "groups")
    actions = ("approve_selected",)
    list_select_related = ("approval",)
    inlines = (LimitsInline,)

    @admin.display(description="approval")
    def approval(self, obj: User) -> str:
        return "waiting" if accounts.is_waiting(obj) else ""

    @admin.action(description="Approve the selected sign-ups", permissions=["change"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        n = accounts.approve(queryset, by=request.user)
        if n:
            self.message_user(request, f"Approved {n} sign-up{'s' if n != 1 else ''}: they can log in now.")
        else:
            self.message_user(
                request, "None of the selected users was waiting for approval.", messages.WARNING
            )


class InvitationCreateForm(ModelForm[Invitation]):
    days = forms.IntegerField(
        min_value=1,
        max_value=accounts.MAX_INVITATION_DAYS,
        initial=accounts.INVITATION_DAYS,
        help_text="How many days the link works.",
    )

    class Meta:
        model = Invitation
        fields = ("note",)


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin[Invitation]):
    list_display = ("__str__", "created_by", "created_at", "expires_at", "state")
    list_select_related = ("created_by", "used_by")
    search_fields = ("note",)
    readonly_fields = ("created_by", "created_at", "expires_at", "used_at", "used_by", "state")

    @admin.display(description="state")
    def state(self, obj: Invitation) -> str:
        return accounts.invitation_state(obj)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> type[ModelForm[Invitation]]:
        if obj is None:
            kwargs["form"] = InvitationCreateForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request: HttpRequest, obj: Invitation | None = None) -> Any:
        if obj is None:
            return ["note", "days"]
        return ["note", "state", "created_by", "created_at", "expires_at", "used_at", "used_by"]

    def get_readonly_fields(self, request: HttpRequest, obj: Invitation | None = None) -> tuple[str, ...]:
        return self.readonly_fields if obj is not None else ()

    def save_model(self, request: HttpRequest, obj: Invitation, form: Any, change: bool) -> None:
        if change:
            obj.save(update_fields=["note"])
            return
        new = accounts.create_invitation(
            request.user, note=form.cleaned_data.get("note") or "", days=form.cleaned_data["days"]
        )
        obj.pk, obj.digest, obj.created_at, obj.expires_at = (
            new.invitation.pk,
            new.invitation.digest,
            new.invitation.created_at,
            new.invitation.expires_at,
        )
        # Only a digest is stored: the page after this is the one time anyone sees the link.
        request._new_invitation_link = request.build_absolute_uri(new.path)  # type: ignore[attr-defined]

    def response_add(
        self, request: HttpRequest, obj: Invitation, post_url_continue: str | None = None
    ) -> HttpResponse:
        link = getattr(request, "_new_invitation_link", None)
        if link is None:
            return super().response_add(request, obj, post_url_continue)
        # Rendered here, not after a redirect that would park the link in the message storage.
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Invitation created",
            "invitation": obj,
            "link": link,
        }
        response = TemplateResponse(request, "admin/assistants_app/invitation/created.html", context)
        response["Cache-Control"] = "no-store"
        return response
