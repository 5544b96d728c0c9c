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
        # An existing default assistant is left as it is: its tools are staff's decision.
        if not Assistant.objects.filter(is_default=True).exists():
            tools, sandbox_problem = default_tools()
            a = Assistant.objects.create(
                name="Assistant",
                model=settings.DEFAULT_MODEL,
                instructions="You are a helpful assistant.",
                is_default=True,
                tools=tools,
            )
            names = " and ".join(t["type"].replace("_", " ") for t in tools)
            self.stdout.write(f"Created default assistant {a.id} (model {a.model}, with {names})")
            if sandbox_problem:
                self.stdout.write(
                    self.style.WARNING(
                        f"Code interpreter left off: its sandbox does not work here ({sandbox_problem}). "
                        "Enable it on the assistant in the admin once it does."
                    )
                )
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


def default_tools() -> tuple[list[dict[str, Any]], str | None]:
    """A new default assistant's tools: file search, so that files attached in the chat are read,
    and the code interpreter when its sandbox works on this machine (else why it doesn't)."""
    # The sandbox's own check (bwrap can make namespaces, the sandbox venv exists), as executions use.
    from assistants_app.tools.code_interpreter.bwrap import check_available
    from assistants_app.tools.code_interpreter.sandbox import SandboxUnavailable

    tools: list[dict[str, Any]] = [{"type": "file_search"}]
    try:
        check_available()
    except SandboxUnavailable as exc:
        return tools, str(exc)
    return [*tools, {"type": "code_interpreter"}], None
