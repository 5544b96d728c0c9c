"""Regenerate, edit and resend, continue, and flipping versions: the prompt is the current path only."""

from __future__ import annotations

import pytest

from assistants_app.backends import fake
from assistants_app.backends.base import TextDelta
from assistants_app.models import Assistant, ChatAnswer, Message
from assistants_app.services import chat, conversations, versions
from tests.support.helpers import wait_run

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def assistant(transactional_db):
    return Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True)


def prompt_texts(request_index: int = -1) -> list[tuple[str, str]]:
    req = fake.requests()[request_index]
    return [(m["role"], m["content"]) for m in req.messages if m["role"] != "system"]


def current_path(thread) -> list[tuple[str, str]]:
    return [(m.role, m.text) for m in Message.objects.filter(thread=thread, superseded=False).order_by("id")]


def test_regenerate_keeps_the_old_answer_as_a_version_and_out_of_the_prompt(
    executor, alice, assistant
) -> None:
    fake.script(fake.text_turn("first answer"), fake.text_turn("second answer"))
    q, run = chat.send(alice, "the question")
    wait_run(run.id)
    thread = q.thread
    change = chat.regenerate(alice, thread)
    assert change.run is not None
    wait_run(change.run.id)
    # The model was asked the question alone, not shown its earlier answer.
    assert prompt_texts() == [("user", "the question")]
    assert current_path(thread) == [("user", "the question"), ("assistant", "second answer")]
    assert Message.objects.filter(thread=thread, superseded=True).get().text == "first answer"
    assert ChatAnswer.objects.filter(question=q).count() == 2
    newest = Message.objects.get(thread=thread, superseded=False, role="assistant")
    assert versions.pagers([newest])[newest.id] == versions.Pager(2, 2)
    # Flip back: version 1 is current again, and what the next question is sent with.
    chat.select_version(alice, thread, newest.id, 1)
    assert current_path(thread) == [("user", "the question"), ("assistant", "first answer")]
    fake.script(fake.text_turn("third"))
    _, run3 = chat.send(alice, "follow-up", thread=thread)
    wait_run(run3.id)
    assert prompt_texts() == [("user", "the question"), ("assistant", "first answer"), ("user", "follow-up")]


def test_edit_replaces_the_last_pair_and_keeps_it_reachable(executor, alice, assistant) -> None:
    fake.script(fake.text_turn("A1"), fake.text_turn("B1"), fake.text_turn("B2"))
    _, r1 = chat.send(alice, "first")
    wait_run(r1.id)
    q2, r2 = chat.send(alice, "secnod")
    wait_run(r2.id)
    thread = q2.thread
    with pytest.raises(chat.ChatError):
        chat.edit(alice, thread, Message.objects.filter(thread=thread, role="user").order_by("id")[0].id, "x")
    change = chat.edit(alice, thread, q2.id, "second")
    assert change.question is not None and f"m-{q2.id}" in change.removed
    assert change.run is not None
    wait_run(change.run.id)
    assert prompt_texts() == [("user", "first"), ("assistant", "A1"), ("user", "second")]
    assert current_path(thread)[-2:] == [("user", "second"), ("assistant", "B2")]
    new_q = Message.objects.get(id=change.question.id)
    assert versions.pagers([new_q])[new_q.id] == versions.Pager(2, 2)
    back = chat.select_version(alice, thread, new_q.id, 1)
    assert [getattr(i, "text", "") for i in back.shown if isinstance(i, Message)] == ["secnod", "B1"]
    assert current_path(thread)[-2:] == [("user", "secnod"), ("assistant", "B1")]


def test_continue_after_stop_extends_the_same_version(executor, alice, assistant) -> None:
    fake.script(fake.Turn([TextDelta("half of it")], hang=True), fake.text_turn(" and the rest"))
    q, run = chat.send(alice, "tell me")
    thread = q.thread
    import time

    deadline = time.monotonic() + 10
    while not Message.objects.filter(run=run).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    chat.stop(alice, run.id)
    assert wait_run(run.id).status == "cancelled"
    change = chat.continue_reply(alice, thread)
    assert change.run is not None
    wait_run(change.run.id)
    # The model sees its stopped text and is asked to go on from it.
    assert prompt_texts() == [("user", "tell me"), ("assistant", "half of it")]
    assert "Continue it exactly where it stopped" in fake.requests()[-1].messages[0]["content"]
    assert current_path(thread) == [
        ("user", "tell me"),
        ("assistant", "half of it"),
        ("assistant", " and the rest"),
    ]
    # Still one version of the answer, not two.
    assert versions.pagers(list(Message.objects.filter(thread=thread, role="assistant"))) == {}
    with pytest.raises(chat.ChatError):
        chat.continue_reply(alice, thread)  # the last run completed: nothing to continue


def test_regenerate_only_the_latest_reply_and_not_while_replying(executor, alice, assistant) -> None:
    fake.script(fake.text_turn("one"), fake.text_turn("two"))
    q1, r1 = chat.send(alice, "q1")
    wait_run(r1.id)
    _, r2 = chat.send(alice, "q2", thread=q1.thread)
    wait_run(r2.id)
    old = Message.objects.get(run=r1)
    with pytest.raises(chat.ChatError, match="latest reply"):
        chat.regenerate(alice, q1.thread, old.id)
    fake.script(fake.Turn([TextDelta("x")], hang=True))
    chat.regenerate(alice, q1.thread)
    with pytest.raises(chat.ChatError) as busy:
        chat.regenerate(alice, q1.thread)
    assert busy.value.status == 409


def test_edit_keeps_the_attachments_that_still_exist(alice, assistant) -> None:
    from assistants_app.models import File

    thread = conversations.current(alice)
    kept = File.objects.create(owner=alice, filename="a.txt", purpose="assistants", bytes=1)
    gone = File.objects.create(owner=alice, filename="b.txt", purpose="assistants", bytes=1)
    q = Message.objects.create(
        thread=thread,
        role="user",
        content=[{"type": "text", "text": {"value": "read these", "annotations": []}}],
        attachments=[{"file_id": kept.id, "tools": []}, {"file_id": gone.id, "tools": []}],
    )
    gone.delete()
    change = chat.edit(alice, thread, q.id, "read this one")
    assert change.question is not None
    assert [a["file_id"] for a in Message.objects.get(id=change.question.id).attachments] == [kept.id]
    assert change.run is not None
    chat.stop(alice, change.run.id)


def test_edit_keeps_the_images_that_still_exist(alice, assistant) -> None:
    from django.core.files.uploadedfile import SimpleUploadedFile

    from assistants_app.services import files
    from tests.support.images import png

    thread = conversations.current(alice)
    kept, gone = (
        files.store_file(alice.id, SimpleUploadedFile(name, png()), filename=name, purpose="vision")
        for name in ("a.png", "b.png")
    )
    linked = {"type": "image_url", "image_url": {"url": "https://example.com/c.png"}}
    q = Message.objects.create(
        thread=thread,
        role="user",
        content=[
            {"type": "text", "text": {"value": "what is this?", "annotations": []}},
            {"type": "image_file", "image_file": {"file_id": kept.id, "detail": "low"}},
            {"type": "image_file", "image_file": {"file_id": gone.id}},
            linked,
        ],
    )
    files.delete_file(gone)
    change = chat.edit(alice, thread, q.id, "and what colour is it?")
    assert change.question is not None
    edited = Message.objects.get(id=change.question.id)
    assert edited.text == "and what colour is it?"
    assert edited.content[1:] == [
        {"type": "image_file", "image_file": {"file_id": kept.id, "detail": "low"}},
        linked,
    ]
    assert change.run is not None
    chat.stop(alice, change.run.id)
