from __future__ import annotations

from django.apps import AppConfig


class AssistantsAppConfig(AppConfig):
    name = "assistants_app"
    verbose_name = "Assistants"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks
        from .services import files
        from .tools.code_interpreter import cleanup

        files.connect()
        cleanup.connect()
        checks.register()
