"""Start the product in one process: daphne (HTTP + websockets) and, in embedded mode, the run executor."""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

log = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Serve the web chat, admin and /v1 API with daphne; executes runs in-process unless RUN_EXECUTOR=external."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8000)

    def handle(self, *args: Any, **options: Any) -> None:
        from daphne.cli import CommandLineInterface

        from assistants_app.server.http import install
        from chatsite import warmup

        # Request bodies are capped inside Twisted, before they are buffered (server/http.py).
        install()
        # Warm up, then listen: the first message must not wait for imports and compilation.
        seconds = warmup.warm()
        self.stdout.write(f"Warmed up in {seconds:.2f} s")

        if settings.RUN_EXECUTOR == "embedded":
            # On daphne's event loop (daphne.cli imported daphne.server, which installed it).
            from assistants_app.runs.executor import ReactorExecutor

            ReactorExecutor().install()
        self.stdout.write(f"Serving on http://{options['host']}:{options['port']}/ (Ctrl-C to stop)")
        try:
            # Daphne installs SIGINT/SIGTERM handlers and returns when its reactor stops.
            CommandLineInterface().run(
                [
                    "-b",
                    options["host"],
                    "-p",
                    str(options["port"]),
                    # No --proxy-headers: X-Forwarded-For / -Proto are honoured only from
                    # TRUSTED_PROXIES, by the ASGI application (server/proxies.py).
                    "chatsite.asgi:application",
                ]
            )
        finally:
            from assistants_app import asyncdb

            asyncdb.shutdown()
