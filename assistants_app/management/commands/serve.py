"""Start the product in one process: daphne (HTTP + websockets) and, in embedded mode, the run executor."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

log = logging.getLogger(__name__)


def _leave_bodies_to_django() -> None:
    """Stop Twisted from parsing multipart bodies itself.

    Twisted's HTTP request parses every multipart/form-data POST into memory before daphne sees it
    (Django parses it again, streaming), and answers a body it cannot parse with a bare, non-JSON
    400 that never reaches the API's error handling. Daphne ignores Twisted's parsed arguments.
    """
    from daphne.http_protocol import WebRequest

    if getattr(WebRequest, "_assistants_patched", False):
        return
    original = WebRequest.__init__

    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    WebRequest.__init__ = __init__  # type: ignore[method-assign]
    WebRequest._assistants_patched = True  # type: ignore[attr-defined]


class Command(BaseCommand):
    help = "Serve the web chat, admin and /v1 API with daphne; executes runs in-process unless RUN_EXECUTOR=external."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        from daphne.cli import CommandLineInterface

        _leave_bodies_to_django()

        executor = None
        if settings.RUN_EXECUTOR == "embedded":
            from assistants_app.runs.executor import ThreadedExecutor

            executor = ThreadedExecutor().start()
        self.stdout.write(f"Serving on http://{options['host']}:{options['port']}/ (Ctrl-C to stop)")
        try:
            # Daphne installs SIGINT/SIGTERM handlers and returns when its reactor stops.
            CommandLineInterface().run(
                [
                    "-b",
                    options["host"],
                    "-p",
                    str(options["port"]),
                    "--proxy-headers",
                    "chatsite.asgi:application",
                ]
            )
        finally:
            if executor is not None:
                executor.stop()
