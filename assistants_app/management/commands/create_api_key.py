"""`manage.py create_api_key USERNAME [--name N]`: prints the new key as the last line (shown once)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from assistants_app.services.keys import create_key


class Command(BaseCommand):
    help = (
        "Create a /v1 API key for a user. The key is printed once, on the last line; only its hash is stored."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("username")
        parser.add_argument("--name", default="", help="A label to tell keys apart")
        parser.add_argument(
            "--create-user", action="store_true", help="Create the user (no password) if missing"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        username = options["username"]
        user = User.objects.filter(username=username).first()
        if user is None:
            if not options["create_user"]:
                raise CommandError(f"No user named {username!r} (pass --create-user to create one).")
            user = User.objects.create_user(username=username)
            user.set_unusable_password()
            user.save()
        new = create_key(user, name=options["name"])
        self.stdout.write(
            f"Created API key {new.key.id} ({new.key.prefix}…) for {username}. Store it now: it is not shown again."
        )
        self.stdout.write(new.raw)
