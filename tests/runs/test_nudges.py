"""runs/nudges.py (was runs/signals.py): wake-ups and cancels for executors, here and through Redis,
without reaching into the event log's private attributes (it used get_event_log()._sync)."""

from __future__ import annotations

import ast
import json
import time
from pathlib import Path

from assistants_app.runs import nudges

APP = Path(__file__).resolve().parent.parent / "assistants_app"


class _Executor:
    def __init__(self) -> None:
        self.woken = 0
        self.cancelled: list[str] = []

    def wake(self) -> None:
        self.woken += 1

    def request_cancel(self, run_id: str) -> None:
        self.cancelled.append(run_id)


def test_executors_in_this_process_are_told_directly() -> None:
    ex = _Executor()
    nudges.register(ex)  # type: ignore[arg-type]
    try:
        nudges.notify_queued()
        nudges.notify_cancel("run_1")
    finally:
        nudges.unregister(ex)  # type: ignore[arg-type]
    nudges.notify_queued()
    assert (ex.woken, ex.cancelled) == (1, ["run_1"])


def test_other_processes_hear_through_redis(settings, redis_url) -> None:
    import redis

    settings.REDIS_URL = redis_url
    client = redis.Redis.from_url(redis_url)
    pubsub = client.pubsub()
    pubsub.subscribe(nudges.CHANNEL)
    try:
        assert pubsub.get_message(timeout=2)["type"] == "subscribe"
        nudges.notify_cancel("run_2")
        deadline = time.monotonic() + 5
        message = None
        while message is None and time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.5)
        assert message is not None and json.loads(message["data"]) == {"type": "cancel", "run_id": "run_2"}
    finally:
        pubsub.close()
        client.close()


def _private_event_log_access(source: str) -> list[int]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and "get_event_log()" in ast.unparse(node.value)
        ):
            found.append(node.lineno)
        if (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) == "getattr"
            and node.args
            and "get_event_log()" in ast.unparse(node.args[0])
        ):
            found.append(node.lineno)
    return found


def test_nothing_reaches_into_the_event_log() -> None:
    found = {
        str(p.relative_to(APP)): lines
        for p in APP.rglob("*.py")
        if p.name != "events.py" and (lines := _private_event_log_access(p.read_text()))
    }
    assert found == {}
    assert _private_event_log_access('c = getattr(get_event_log(), "_sync", None)\n')  # positive control
