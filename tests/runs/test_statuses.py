"""Run statuses and the active/terminal sets are defined once (models/run.py).

Before it, models/run.py and runs/state.py each defined them, and literals stood elsewhere (the API
object's expires_at rule, the stream's fallback, the OpenAPI enum, the terminal event names).
"""

from __future__ import annotations

import ast
from pathlib import Path

from assistants_app.api.response_schemas import COMPONENTS
from assistants_app.models import Run
from assistants_app.models.run import (
    ACTIVE_STATUSES,
    EXECUTING_STATUSES,
    EXPIRING_STATUSES,
    TERMINAL_STATUSES,
    RunStatus,
)
from assistants_app.runs import state
from assistants_app.runs.events import TERMINAL_RUN_EVENTS

APP = Path(__file__).resolve().parent.parent / "assistants_app"
# Values that only a run's status takes (message, step and file statuses share the others).
RUN_ONLY = {RunStatus.QUEUED.value, RunStatus.REQUIRES_ACTION.value, RunStatus.CANCELLING.value}
# The executors' "a run is queued" nudge is a message type, not a status.
NOT_STATUSES = {"runs/nudges.py"}


def test_the_sets_partition_the_statuses() -> None:
    assert set(ACTIVE_STATUSES) | set(TERMINAL_STATUSES) == set(RunStatus)
    assert not set(ACTIVE_STATUSES) & set(TERMINAL_STATUSES)
    assert set(EXPIRING_STATUSES) <= set(ACTIVE_STATUSES) and set(EXECUTING_STATUSES) <= set(ACTIVE_STATUSES)
    assert Run.Status is RunStatus


def test_everything_else_derives_from_them() -> None:
    assert set(state.ALLOWED) == set(RunStatus)
    assert all(not state.ALLOWED[s] for s in TERMINAL_STATUSES)
    assert TERMINAL_RUN_EVENTS == {f"thread.run.{s}" for s in TERMINAL_STATUSES}
    assert COMPONENTS["Run"]["properties"]["status"]["enum"] == list(RunStatus.values)
    (constraint,) = Run._meta.constraints
    assert dict(constraint.condition.children)["status__in"] == ACTIVE_STATUSES  # type: ignore[attr-defined]


def _literals(source: str) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and node.value in RUN_ONLY
    ]


def test_no_module_spells_a_status_out() -> None:
    found = {
        str(p.relative_to(APP)): lines
        for p in APP.rglob("*.py")
        if "migrations" not in p.parts
        and str(p.relative_to(APP)) not in {"models/run.py", *NOT_STATUSES}
        and (lines := _literals(p.read_text()))
    }
    assert found == {}
    assert _literals('if run.status == "requires_action": pass\n') == [1]  # positive control
