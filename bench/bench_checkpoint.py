"""CPU of one streaming-text checkpoint: the ORM's UPDATE vs. models.thread.checkpoint_content.

A streaming run saves its text every RUN_CHECKPOINT_SECONDS (runs/outputs.py); at 50 streams that
is 50 saves a second. Both paths write the same ~2 KB of text to the same in-progress message,
alternated `--repeat` times in one process, on a fresh SQLite database (or DATABASE_URL's):

    .venv/bin/python -m bench.bench_checkpoint [--n 2000] [--repeat 3] [--chars 2000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chars", type=int, default=2000)
    a = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="bench-checkpoint-")
    os.environ.setdefault("DATABASE_URL", f"sqlite:///{tmp}/db.sqlite3")
    os.environ.update(
        {"DATA_DIR": tmp, "LOG_LEVEL": "WARNING", "DJANGO_SETTINGS_MODULE": "chatsite.settings"}
    )
    import django

    django.setup()
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection

    from assistants_app.models import Message, Thread
    from assistants_app.models.thread import checkpoint_content
    from assistants_app.runs.outputs import text_content

    call_command("migrate", verbosity=0)
    user = get_user_model().objects.create(username=f"bench-{os.getpid()}")
    msg = Message.objects.create(
        thread=Thread.objects.create(owner=user), role="assistant", status=Message.Status.IN_PROGRESS
    )
    content = text_content(" word" * (a.chars // 5))

    def orm() -> None:
        Message.objects.filter(id=msg.id, status=Message.Status.IN_PROGRESS).update(content=content)

    def direct() -> None:
        checkpoint_content(msg.id, content)

    paths = {"ORM `filter().update()`": orm, "`checkpoint_content`": direct}
    results: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(a.repeat):
        for name, fn in paths.items():
            start = time.process_time()
            for _ in range(a.n):
                fn()
            results[name].append((time.process_time() - start) / a.n * 1e6)
    print(
        f"{connection.vendor}, {a.n} saves of {a.chars} characters per cell, {time.strftime('%Y-%m-%d %H:%M')}\n"
    )
    print("| checkpoint | CPU per save, µs (median; each run) |")
    print("|---|---|")
    for name, runs in results.items():
        print(f"| {name} | {statistics.median(runs):.1f} ({', '.join(f'{r:.1f}' for r in runs)}) |")


if __name__ == "__main__":
    main()
