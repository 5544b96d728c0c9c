"""Database-side set-up for a capacity run, in a subprocess with the server's environment (so the
orchestrator never imports Django against one database and then needs another).

    python -m bench.capacity.prepare init USERS      # migrate, bootstrap, USERS chat users → JSON
    python -m bench.capacity.prepare runs            # runs by status → JSON

Chat users are logged in the way Django's login() would (a session row per user) and get their
live chat thread, as their first visit to the chat page would create it. Everything is written
before the server starts, so the set-up never competes with the server for SQLite's lock.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from datetime import timedelta


def init(n_users: int) -> dict[str, object]:
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY, load_backend
    from django.contrib.auth.models import User
    from django.contrib.sessions.backends.db import SessionStore
    from django.contrib.sessions.models import Session
    from django.core.management import call_command
    from django.utils import timezone

    from assistants_app.models import Thread

    call_command("migrate", "--noinput", verbosity=0)
    call_command("collectstatic", "--noinput", verbosity=0)
    call_command("bootstrap", verbosity=0)
    prefix = f"cap-{secrets.token_hex(3)}-"
    User.objects.bulk_create([User(username=f"{prefix}{i}", password="!") for i in range(n_users)])
    users = list(User.objects.filter(username__startswith=prefix).order_by("id"))
    Thread.objects.bulk_create([Thread(owner=u, is_chat=True) for u in users])
    # The backend login() records is the one that authenticated the user; the first configured one
    # (the lockout check) cannot load users, so pick as Django's force_login() does.
    backend = next(b for b in settings.AUTHENTICATION_BACKENDS if hasattr(load_backend(b), "get_user"))
    store = SessionStore()
    expire = timezone.now() + timedelta(days=1)
    sessions, out = [], []
    for u in users:
        key = secrets.token_hex(16)
        data = {
            SESSION_KEY: str(u.pk),
            BACKEND_SESSION_KEY: backend,
            HASH_SESSION_KEY: u.get_session_auth_hash(),
        }
        sessions.append(Session(session_key=key, session_data=store.encode(data), expire_date=expire))
        out.append({"session": key, "csrf": secrets.token_hex(16)})
    Session.objects.bulk_create(sessions, batch_size=500)
    return {"users": out}


def runs() -> dict[str, int]:
    from django.db.models import Count

    from assistants_app.models import Run

    return {row["status"]: row["n"] for row in Run.objects.values("status").annotate(n=Count("id"))}


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
    import django

    django.setup()
    cmd = sys.argv[1]
    out = init(int(sys.argv[2])) if cmd == "init" else runs()
    sys.stdout.write(json.dumps(out) + "\n")


if __name__ == "__main__":
    main()
