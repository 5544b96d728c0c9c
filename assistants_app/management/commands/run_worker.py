"""A run worker process: claims queued runs from the database and executes them."""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from django.core.management.base import BaseCommand

from assistants_app import asyncdb
from assistants_app.runs.executor import Executor


class Command(BaseCommand):
    help = "Execute queued runs (production: several of these beside the web processes; needs REDIS_URL)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--concurrency", type=int, default=None)

    def handle(self, *args: Any, **options: Any) -> None:
        executor = Executor(concurrency=options["concurrency"])

        async def main() -> None:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, executor.stop)
            await executor.run_forever()

        self.stdout.write(f"worker {executor.worker_id} started", ending="\n")
        self.stdout.flush()
        try:
            asyncio.run(main())
        finally:
            asyncdb.shutdown()
        self.stdout.write("worker stopped")
