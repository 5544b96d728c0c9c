"""One "lock the thread, refuse if a run is active" (services.threads.lock_idle) and one busy
check per chat send.

Before it, post_message, start_run and delete_thread each had their own copy, and the chat page
asked "is this thread busy" itself before start_run asked again, then read its message back.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from assistants_app.errors import ThreadBusy
from assistants_app.models import Assistant, File, Message, Run
from assistants_app.services import chat, lookups, threads
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread, delete_thread, post_message

pytestmark = pytest.mark.django_db


@pytest.fixture
def assistant(db):
    return Assistant.objects.create(
        name="Helper",
        model="m",
        is_default=True,
        tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
    )


def test_every_write_to_a_busy_thread_goes_through_lock_idle(alice, assistant, monkeypatch) -> None:
    thread = create_thread(alice)
    start_run(thread, assistant)  # queued: active
    calls: list[str] = []
    real = threads.lock_idle

    def counting(t):
        calls.append(t.id)
        real(t)

    monkeypatch.setattr(threads, "lock_idle", counting)
    for write in (
        lambda: post_message(thread, role="user", content="more"),
        lambda: start_run(thread, assistant),
        lambda: delete_thread(thread),
    ):
        with pytest.raises(ThreadBusy):
            write()
    assert calls == [thread.id] * 3
    assert (
        Message.objects.filter(thread=thread).count() == 0 and Run.objects.filter(thread=thread).count() == 1
    )


def test_a_chat_send_asks_once_and_returns_its_own_message(alice, assistant, monkeypatch) -> None:
    asked: list[str] = []
    real = lookups.active_run

    def counting(t):
        asked.append(t.id)
        return real(t)

    monkeypatch.setattr(lookups, "active_run", counting)
    message, run = chat.send(alice, "hello")
    assert len(asked) == 1
    assert message.run_id is None and message.text == "hello" and run.thread_id == message.thread_id
    with pytest.raises(chat.ChatError) as busy:
        chat.send(alice, "again", [SimpleUploadedFile("a.txt", b"data")])
    assert busy.value.status == 409 and len(asked) == 2
    assert not File.objects.exists()  # the refused message stored nothing


def test_a_send_that_loses_a_race_leaves_no_file_behind(alice, assistant, monkeypatch, settings) -> None:
    chat.send(alice, "first")  # a run is active on the live thread
    # Pretend the row lock missed it: the one-active-run index is then what refuses the run, after
    # the attachment was stored inside the transaction.
    monkeypatch.setattr(threads, "lock_idle", lambda thread: None)
    with pytest.raises(chat.ChatError) as busy:
        chat.send(alice, "second", [SimpleUploadedFile("a.txt", b"data")])
    assert busy.value.status == 409
    assert not File.objects.exists()
    media = settings.MEDIA_ROOT / "files" / str(alice.pk)
    assert not media.exists() or not any(media.iterdir())
