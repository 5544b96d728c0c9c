"""`manage.py revoke_api_key PREFIX_OR_ID`: revoke one API key (by its shown prefix or row id)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from assistants_app.services.keys import find_keys, revoke_key


class Command(BaseCommand):
    help = "Revoke an API key, given its prefix (as shown when created, e.g. sk-as-AbC123) or its id."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("key")

    def handle(self, *args: Any, **options: Any) -> None:
        ref = options["key"].rstrip("…")
        matches = find_keys(ref)
        if not matches:
            raise CommandError(f"No active API key matches {ref!r}.")
        if len(matches) > 1:
            raise CommandError(
                f"{len(matches)} keys match {ref!r}; use the key id: {', '.join(str(k.id) for k in matches)}."
            )
        key = revoke_key(matches[0].id)
        self.stdout.write(
            f"Revoked API key {key.id} ({key.prefix}…) of {key.user} at {key.revoked_at:%Y-%m-%d %H:%M:%S}."
        )
