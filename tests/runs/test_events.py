"""The run event log: nothing lost, in order, resumable from any cursor, across threads/processes."""

from __future__ import annotations

import asyncio
import threading

import pytest

from assistants_app.runs.emitter import Emitter, coalesce
from assistants_app.runs.events import MemoryEventLog, RedisEventLog


@pytest.fixture(params=["memory", "redis"])
def make_log(request, stack):  # the redis case skips without Redis (phase 1)
    if request.param == "memory":
        return lambda: MemoryEventLog(retention=60)
    url = request.getfixturevalue("redis_url")
    return lambda: RedisEventLog(url)


def _delta(i: int) -> tuple[str, dict]:  # type: ignore[type-arg]
    return (
        "thread.message.delta",
        {
            "id": "msg_1",
            "object": "thread.message.delta",
            "delta": {
                "content": [{"index": 0, "type": "text", "text": {"value": f"<{i}>", "annotations": []}}]
            },
        },
    )


async def test_burst_of_2000_deltas_reaches_a_late_reader_complete_and_in_order(make_log) -> None:
    log = make_log()
    run_id = f"run_burst_{id(log)}"
    expected = "".join(f"<{i}>" for i in range(2000))

    def produce() -> None:
        for i in range(2000):
            log.publish(run_id, *_delta(i))
        log.publish(run_id, "thread.run.completed", {"id": run_id})

    early: list[str] = []

    async def read(into: list[str]) -> None:
        async for ev in log.read(run_id, "", idle_timeout=5):
            if ev.event == "thread.run.completed":
                return
            into.append(ev.data["delta"]["content"][0]["text"]["value"])

    early_task = asyncio.ensure_future(read(early))
    producer = threading.Thread(target=produce)  # another thread, as the executor is
    producer.start()
    await asyncio.sleep(0.01)
    late: list[str] = []
    await read(late)  # joins mid-burst or after it: must still see everything from the start
    await early_task
    producer.join()
    assert "".join(early) == expected
    assert "".join(late) == expected


async def test_resume_from_cursor_neither_loses_nor_repeats(make_log) -> None:
    log = make_log()
    run_id = f"run_resume_{id(log)}"
    for i in range(10):
        log.publish(run_id, *_delta(i))
    first = []
    async for ev in log.read(run_id, "", idle_timeout=0.2):
        first.append(ev)
        if len(first) == 4:
            break
    for i in range(10, 15):
        log.publish(run_id, *_delta(i))
    rest = [ev async for ev in log.read(run_id, first[-1].cursor, idle_timeout=0.2)]
    values = [ev.data["delta"]["content"][0]["text"]["value"] for ev in first + rest]
    assert values == [f"<{i}>" for i in range(15)]
    assert log.end_cursor(run_id) == rest[-1].cursor


async def test_emitter_merges_deltas_only_under_backpressure() -> None:
    class SlowLog(MemoryEventLog):
        instant = False  # publishing takes a round trip, as to Redis: the emitter's pump publishes

        async def apublish(self, run_id, items):
            await asyncio.sleep(0.05)
            return await super().apublish(run_id, items)

    log = SlowLog(retention=60)
    em = Emitter(log, "run_x")
    for i in range(100):
        em.emit(*_delta(i))
        await asyncio.sleep(0)
    await em.close()
    got = [ev async for ev in log.read("run_x", "", idle_timeout=0.1)]
    assert len(got) < 100  # merged while the slow publish was in flight
    assert "".join(ev.data["delta"]["content"][0]["text"]["value"] for ev in got) == "".join(
        f"<{i}>" for i in range(100)
    )


def test_coalesce_keeps_other_events_and_order() -> None:
    items = [_delta(0), _delta(1), ("thread.run.step.delta", {"id": "s"}), _delta(2)]
    out = coalesce(items)
    assert [e for e, _ in out] == ["thread.message.delta", "thread.run.step.delta", "thread.message.delta"]
    assert out[0][1]["delta"]["content"][0]["text"]["value"] == "<0><1>"
