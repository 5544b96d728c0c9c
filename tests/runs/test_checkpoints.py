"""runs/checkpoints.py: the streamed texts due on one event loop are saved together, in one trip to
a database thread, with the newest text; a message's final write never loses to a checkpoint."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from assistants_app.asyncdb import db
from assistants_app.models import Message
from assistants_app.runs import checkpoints
from assistants_app.runs.outputs import text_content
from assistants_app.services.threads import create_thread

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def messages(alice) -> list[str]:
    thread = create_thread(alice)
    return [
        Message.objects.create(
            thread=thread, role="assistant", content=[], status=Message.Status.IN_PROGRESS
        ).id
        for _ in range(3)
    ]


@pytest.fixture
def saves(monkeypatch) -> list[list[str]]:
    """The message ids of every trip that saved checkpoints."""
    calls: list[list[str]] = []
    real = checkpoints.save_contents

    def counting(rows: list[tuple[str, Any]]) -> None:
        calls.append([message_id for message_id, _ in rows])
        real(rows)

    monkeypatch.setattr(checkpoints, "save_contents", counting)
    return calls


async def _texts(ids: list[str]) -> list[str]:
    return await db(lambda: [Message.objects.get(id=i).text for i in ids])()


async def test_the_messages_due_on_a_loop_are_saved_in_one_trip_with_their_newest_text(
    messages, saves, settings
) -> None:
    settings.RUN_CHECKPOINT_SECONDS = 0.1
    batch = checkpoints.for_loop()
    assert checkpoints.for_loop() is batch
    texts = {i: "" for i in messages}
    for n, message_id in enumerate(messages):
        texts[message_id] = f"text {n}"
        batch.request(message_id, lambda i=message_id: text_content(texts[i]))  # type: ignore[misc]
        await asyncio.sleep(0.01)
    texts[messages[0]] = "text 0, and more since"  # read at the flush, not at the request
    await asyncio.sleep(0.25)
    assert saves == [messages]
    assert await _texts(messages) == ["text 0, and more since", "text 1", "text 2"]


async def test_nothing_is_written_for_a_message_that_ended(messages, saves, settings) -> None:
    settings.RUN_CHECKPOINT_SECONDS = 0.05
    ended, closed, open_ = messages
    await db(lambda: Message.objects.filter(id=ended).update(status=Message.Status.COMPLETED))()
    batch = checkpoints.for_loop()
    batch.request(ended, lambda: text_content("stale"))
    batch.request(closed, lambda: None)  # the round's message closed before the flush
    batch.request(open_, lambda: text_content("kept"))
    await asyncio.sleep(0.2)
    assert saves == [[ended, open_]]
    assert await _texts(messages) == ["", "", "kept"]


async def test_a_checkpoint_waits_for_its_message_insert(messages, saves, settings) -> None:
    settings.RUN_CHECKPOINT_SECONDS = 0.05
    inserted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    batch = checkpoints.for_loop()
    batch.request(messages[0], lambda: text_content("after the insert"), inserted)
    await asyncio.sleep(0.2)
    assert saves == []
    inserted.set_result(None)
    await asyncio.sleep(0.05)
    assert await _texts(messages[:1]) == ["after the insert"]


async def test_a_final_write_waits_for_the_checkpoint_being_written(messages, monkeypatch, settings) -> None:
    settings.RUN_CHECKPOINT_SECONDS = 0.05
    entered, release = threading.Event(), threading.Event()
    real = checkpoints.save_contents

    def slow(rows: list[tuple[str, Any]]) -> None:
        entered.set()
        release.wait(5)
        real(rows)

    monkeypatch.setattr(checkpoints, "save_contents", slow)
    batch = checkpoints.for_loop()
    batch.request(messages[0], lambda: text_content("checkpoint"))
    batch.request(messages[1], lambda: text_content("other"))
    await asyncio.to_thread(entered.wait, 5)
    settling = asyncio.ensure_future(batch.settled(messages[0]))
    not_writing = asyncio.ensure_future(batch.settled(messages[2]))
    await asyncio.sleep(0.1)
    assert not settling.done()
    assert not_writing.done()  # a message not in the write under way waits for nothing
    release.set()
    await asyncio.wait_for(settling, 5)
    assert await _texts(messages[:2]) == ["checkpoint", "other"]


async def test_a_settled_message_is_not_saved_and_a_failed_write_is_retried_by_the_next_request(
    messages, monkeypatch, settings, caplog
) -> None:
    settings.RUN_CHECKPOINT_SECONDS = 0.05
    batch = checkpoints.for_loop()
    batch.request(messages[0], lambda: text_content("dropped"))
    await batch.settled(messages[0])
    calls: list[int] = []

    def failing(rows: list[tuple[str, Any]]) -> None:
        calls.append(len(rows))
        raise RuntimeError("database is locked")

    monkeypatch.setattr(checkpoints, "save_contents", failing)
    batch.request(messages[1], lambda: text_content("lost once"))
    await asyncio.sleep(0.2)
    assert calls == [1]
    assert "checkpointing 1 streamed messages failed" in caplog.text
    monkeypatch.undo()
    batch.request(messages[1], lambda: text_content("saved"))
    await asyncio.sleep(0.2)
    assert await _texts(messages[:2]) == ["", "saved"]
