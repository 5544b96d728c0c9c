"""Core bugs found while load-testing the chat (bench/bench_ws.py), each as a minimal test.

They were written as failing repros; each now guards its fix.
"""

from __future__ import annotations

from django.db import OperationalError

from assistants_app.backends import fake
from assistants_app.models import Assistant
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread, post_message
from tests.support.helpers import wait_run


def test_executor_survives_a_transient_database_error(executor, alice, monkeypatch) -> None:
    """Under SQLite write contention `state.claim` raised "database is locked" once; the embedded
    executor thread died and no run was executed again until the process restarted."""
    from assistants_app.runs import state

    real_claim = state.claim
    calls = {"n": 0}

    def claim_locked_once(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 1:
            raise OperationalError("database is locked")
        return real_claim(*args, **kwargs)

    monkeypatch.setattr(state, "claim", claim_locked_once)
    assistant = Assistant.objects.create(owner=alice, model="gpt-4o")
    thread = create_thread(alice)
    post_message(thread, role="user", content="hi")
    fake.script(fake.text_turn("still", " here"))
    run = start_run(thread, assistant)
    assert wait_run(run.id, timeout=5).status == "completed"
