"""The chat product's accounts: staff invitations, and sign-ups waiting for staff approval
(CHAT_SIGNUP, services/accounts.py has the rules)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Invitation(models.Model):
    """A one-time sign-up link made by staff; it works in every CHAT_SIGNUP mode until it expires.

    Only a SHA-256 digest of the link's token is stored: the link is shown once, when it is made.
    """

    digest = models.CharField(max_length=64, unique=True)
    note = models.CharField(
        max_length=200, blank=True, default="", help_text="Who it is for (only staff see this)."
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    used_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Invitation {self.pk}" + (f" ({self.note})" if self.note else "")


class AccountApproval(models.Model):
    """A user who signed up while CHAT_SIGNUP=approval. Until `approved_at` is set the user is
    inactive (is_active=False), so Django lets them into nothing: no login, session, key or page."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="approval"
    )
    requested_at = models.DateTimeField(auto_now_add=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    def __str__(self) -> str:
        return f"{self.user} ({'approved' if self.approved_at else 'waiting'})"


class UserLimits(models.Model):
    """What staff set for one user instead of the server-wide limits (services/usage.py applies it)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, primary_key=True, related_name="limits"
    )
    daily_token_budget = models.PositiveBigIntegerField(
        null=True,
        blank=True,
        help_text=(
            "Tokens this user's runs may use per UTC day, chat and API together. Empty: the server's "
            "USER_DAILY_TOKEN_BUDGET; 0: no budget for this user."
        ),
    )

    class Meta:
        verbose_name = "limits"
        verbose_name_plural = "limits"

    def __str__(self) -> str:
        return f"Limits of {self.user}"
