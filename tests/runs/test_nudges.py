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
        assert message is not None
        assert json.loads(message["data"]) == {"type": "cancel", "run_id": "run_2", "from": nudges._origin()}
    finally:
        pubsub.close()
        client.close()


def test_a_process_does_not_wake_its_own_executors_twice(settings, redis_url) -> None:
    """Its executors were told directly: the Redis copy of its own nudge (which every run start in
    the production setup used to cost, as a second look at the queue) is skipped; other
    processes' nudges still wake them."""
    import asyncio

    import redis

    settings.REDIS_URL = redis_url
    ex = _Executor()

    client = redis.Redis.from_url(redis_url)

    def subscribers() -> int:
        return int(client.pubsub_numsub(nudges.CHANNEL)[0][1])

    async def scenario() -> None:
        others = subscribers()  # other tests' servers may listen too
        listener = asyncio.ensure_future(nudges.listen(ex))  # type: ignore[arg-type]
        try:
            deadline = time.monotonic() + 5
            while subscribers() <= others and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            nudges.notify_queued()  # from this process: only the direct wake (no executor registered here)
            client.publish(nudges.CHANNEL, json.dumps({"type": "queued", "from": "elsewhere:1"}))
            client.publish(nudges.CHANNEL, json.dumps({"type": "cancel", "run_id": "run_9"}))  # older senders
            while (ex.woken, ex.cancelled) != (1, ["run_9"]) and time.monotonic() < deadline:  # noqa: ASYNC110
                await asyncio.sleep(0.02)
            await asyncio.sleep(0.2)  # time for anything else to arrive
        finally:
            listener.cancel()

    try:
        asyncio.run(scenario())
    finally:
        client.close()
    assert (ex.woken, ex.cancelled) == (1, ["run_9"])


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
