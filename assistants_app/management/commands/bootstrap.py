"""Make a fresh installation usable: a default assistant for the chat page, optionally an admin user."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from assistants_app.models import Assistant
from assistants_app.services import accounts


class Command(BaseCommand):
    help = "Create the default chat assistant (and ADMIN_USERNAME/ADMIN_PASSWORD superuser) if missing."

    def handle(self, *args: Any, **options: Any) -> None:
        if not Assistant.objects.filter(is_default=True).exists():
            a = Assistant.objects.create(
                name="Assistant",
                model=settings.DEFAULT_MODEL,
                instructions="You are a helpful assistant.",
                is_default=True,
            )
            self.stdout.write(f"Created default assistant {a.id} (model {a.model})")
        username, password = settings.ADMIN_USERNAME, settings.ADMIN_PASSWORD
        if username and password and accounts.ensure_superuser(username, password):
            self.stdout.write(f"Created superuser {username}")
        if not get_user_model().objects.exists():
            # services/accounts.sign_up: the first sign-up is made staff + superuser, as above.
            how = "sign-up is closed, so create one with `manage.py createsuperuser`"
            if accounts.signup_offered():
                how = "the first account to sign up becomes the administrator (staff + superuser)"
            self.stdout.write(f"No accounts yet: {how}.")
        if not (settings.OPENAI_BASE_URL or settings.OPENAI_API_KEY) and settings.MODEL_BACKEND == "openai":
            self.stdout.write(
                self.style.WARNING(
                    "No model configured: runs will fail until OPENAI_BASE_URL (and OPENAI_API_KEY) are set."
                )
            )
