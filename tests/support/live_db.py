"""The live servers' databases: one template per session (migrated, bootstrapped, the named users
and their API keys, static files), copied for each server. On SQLite the copy is a file copy; in
phase 2 (DATABASE_URL=postgres://...) each server gets `CREATE DATABASE ... TEMPLATE`."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from tests.support import ROOT

USERS = ("alice", "bob", "fuzz")
# Run once per session for the template database: migrate, the default chat assistant, the named
# users with their API keys (keys are plain SHA-256 hashes, so every copy accepts the same ones),
# and the static files the chat page needs with DEBUG off.
_PREPARE = """
import io, json, sys
import django
django.setup()
from django.core.management import call_command
call_command("migrate", interactive=False, verbosity=0)
call_command("bootstrap", stdout=io.StringIO())
call_command("collectstatic", interactive=False, verbosity=0)
keys = {}
for user in sys.argv[1:]:
    out = io.StringIO()
    call_command("create_api_key", user, "--create-user", "--name", "tests", stdout=out)
    keys[user] = out.getvalue().strip().splitlines()[-1]
print(json.dumps(keys))
"""


@dataclass
class Template:
    """What every server of the session starts from: a prepared database to copy and the shared
    static files (the SQLite file, or a PostgreSQL database to use as CREATE DATABASE's template)."""

    dir: Path
    keys: dict[str, str] = field(default_factory=dict)
    sqlite: Path | None = None
    postgres: str | None = None  # the template database's name


SESSION_DIR = Path(tempfile.mkdtemp(prefix="assistants-live-"))
_template: Template | None = None
_template_lock = threading.Lock()


def prepared(env: dict[str, str]) -> Template:
    """The session's template, made on first use with the first server's environment."""
    global _template
    with _template_lock:
        if _template is None:
            template = Template(SESSION_DIR)
            prep = {
                **env,
                "DATA_DIR": str(SESSION_DIR / "data"),
                "DJANGO_SETTINGS_MODULE": "chatsite.settings",
            }
            production = production_services()
            if production is not None:
                template.postgres = f"assistants_live_tmpl_{secrets.token_hex(4)}"
                prep["DATABASE_URL"] = create_database(production[0], template.postgres)
            else:
                template.sqlite = SESSION_DIR / "template.sqlite3"
                prep["DATABASE_URL"] = f"sqlite:///{template.sqlite}"
            done = subprocess.run(
                [sys.executable, "-c", _PREPARE, *USERS],
                env=prep,
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            if done.returncode != 0:
                raise RuntimeError(f"preparing the template database failed:\n{done.stdout}\n{done.stderr}")
            template.keys = json.loads(done.stdout.strip().splitlines()[-1])
            _template = template
        return _template


def production_services() -> tuple[str, str] | None:
    """(postgres URL, Redis URL) in phase 2 of scripts/test.sh, else None (SQLite, in-process events)."""
    db, redis = os.environ.get("DATABASE_URL", ""), os.environ.get("REDIS_URL", "")
    if db.startswith(("postgres://", "postgresql://")) and redis:
        return db, redis
    return None


def create_database(base_url: str, name: str, template: str | None = None) -> str:
    """CREATE DATABASE on the phase-2 PostgreSQL server (a copy of `template` if given); its URL."""
    import psycopg

    copy = f' TEMPLATE "{template}"' if template else ""
    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"{copy}')
    return urlunsplit(urlsplit(base_url)._replace(path=f"/{name}"))


def drop_database(base_url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(base_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def cleanup() -> None:
    """Drop the PostgreSQL template and delete the session's files (at exit)."""
    production = production_services()
    if _template is not None and _template.postgres and production is not None:
        try:
            drop_database(production[0], _template.postgres)
        except Exception as exc:  # clean-up must not hide the tests' own result
            print(f"live_server clean-up failed: {exc}", file=sys.stderr)
    shutil.rmtree(SESSION_DIR, ignore_errors=True)


def sqlite_value(value: object) -> object:
    # Django's SQLite backend keeps datetimes as naive UTC text.
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ")
    return value
