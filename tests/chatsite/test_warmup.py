"""`manage.py serve` warms up before it listens (issue 12.5): before, the first message after a
start waited seconds for imports and compilation that happened after daphne accepted work."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command


def test_serve_is_warm_before_daphne_listens(monkeypatch: pytest.MonkeyPatch, settings: Any, db: Any) -> None:
    from daphne import cli

    from assistants_app.runs import context
    from assistants_app.web import rendering
    from chatsite import warmup

    settings.RUN_EXECUTOR = "external"  # no executor thread: only serve's own warm-up counts
    context._encoding.cache_clear()
    rendering._md.cache_clear()
    monkeypatch.setattr(warmup, "_warm", False)
    seen: dict[str, Any] = {}

    def fake_run(self: Any, args: list[str]) -> None:
        seen["tokenizer"] = context._encoding.cache_info().currsize
        seen["markdown"] = rendering._md.cache_info().currsize
        seen["warm"] = warmup.is_warm()

    monkeypatch.setattr(cli.CommandLineInterface, "run", fake_run)
    monkeypatch.setattr("assistants_app.asyncdb.shutdown", lambda *a: None)
    call_command("serve", "--port", "0")
    assert seen == {"tokenizer": 1, "markdown": 1, "warm": True}
