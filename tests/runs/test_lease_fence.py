"""A run is executed again only if nothing it said reached a reader.

Recovery requeues a run whose lease ran out only while `Run.streamed` is false (runs/recovery.py).
So `streamed` must be committed, by the worker that still holds the lease, before the first model
output is published; otherwise a worker that stalled past its lease would have streamed deltas that
the re-run then streams again (seen in the capacity benchmark at 500 streams: duplicated tokens).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from django.db import connections
from django.utils import timezone

from assistants_app.backends import fake
from assistants_app.backends.base import ChatRequest, Finish, TextDelta
from assistants_app.models import Assistant, Run
from assistants_app.runs import events, recovery
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread, post_message
from tests.support.helpers import collect_events, text_of, wait_run

pytestmark = pytest.mark.django_db(transaction=True)

# The events that carry (or announce) what the model said.
MODEL_OUTPUT = {"thread.message.created", "thread.message.delta", "thread.run.step.created"}


def _in_thread(fn: Any) -> Any:
    """Run `fn` on a thread of its own (the caller may be an event loop, where Django refuses
    synchronous database access), closing that thread's connection afterwards."""
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(fn())
        finally:
            connections.close_all()

    t = threading.Thread(target=target)
    t.start()
    t.join()
    return out[0]


def _streamed(run_id: str) -> bool:
    return bool(_in_thread(lambda: Run.objects.filter(id=run_id).values_list("streamed", flat=True).first()))


@pytest.fixture
def thread(alice):
    t = create_thread(alice)
    post_message(t, role="user", content="hi")
    return t


@pytest.fixture
def assistant(alice):
    return Assistant.objects.create(owner=alice, model="gpt-4o")


def test_streamed_is_committed_before_the_first_output_is_published(
    monkeypatch, executor, thread, assistant
) -> None:
    seen: list[tuple[str, bool]] = []

    class Spy(events.MemoryEventLog):
        def publish_many(self, run_id: str, items: list[tuple[str, dict[str, Any]]]) -> str:
            first_output = next((e for e, _ in items if e in MODEL_OUTPUT), None)
            if first_output is not None and not any(r == run_id for r, _ in seen):
                seen.append((run_id, _streamed(run_id)))
            return super().publish_many(run_id, items)

    monkeypatch.setattr(events, "_log", Spy(retention=60))
    fake.script(fake.text_turn("Hello", " there"))
    run = start_run(thread, assistant)
    assert wait_run(run.id).status == "completed"
    assert seen == [(run.id, True)]


def test_a_run_whose_lease_is_lost_after_its_first_output_is_not_run_again(
    monkeypatch, executor, thread, assistant
) -> None:
    def stall_past_the_lease() -> None:
        # The worker asked the model, then stalled until its lease ran out, and another executor's
        # recovery ran: what it streams after this must not be streamed a second time by a re-run.
        run_id = Run.objects.get(status="in_progress").id
        deadline = time.monotonic() + 2
        while not Run.objects.filter(id=run_id, streamed=True).exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        Run.objects.filter(id=run_id).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
        recovery.reap_lost()
        connections.close_all()

    calls: list[ChatRequest] = []
    original = fake.FakeBackend.stream

    async def stream(self: fake.FakeBackend, request: ChatRequest) -> AsyncIterator[Any]:
        calls.append(request)
        if len(calls) == 1:
            await asyncio.to_thread(stall_past_the_lease)
            for piece in ("first", " attempt"):
                yield TextDelta(piece)
            yield Finish("stop")
            return
        async for ev in original(self, request):
            yield ev

    monkeypatch.setattr(fake.FakeBackend, "stream", stream)
    fake.script(fake.text_turn("second", " attempt"))
    run = start_run(thread, assistant)
    run = wait_run(run.id, ("failed", "completed"))
    deadline = time.monotonic() + 10
    while executor.running and time.monotonic() < deadline:  # the stalled attempt winds down
        time.sleep(0.02)
    run.refresh_from_db()
    assert run.status == "failed" and run.attempts == 1
    assert len(calls) == 1  # the model was asked once
    everything = collect_events(run.id, until=events.TERMINAL_RUN_EVENTS)
    assert "second" not in text_of(everything)
