"""A user's conversations: list order, titles, search, rename, delete (data and files), export."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from assistants_app.backends import fake
from assistants_app.models import Assistant, File, Message, Run, Thread, VectorStore
from assistants_app.services import chat, conversations, export
from tests.support.helpers import wait_run


@pytest.fixture
def assistant(db):
    return Assistant.objects.create(
        name="Helper",
        model="gpt-4o",
        is_default=True,
        tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
    )


def _msg(thread: Thread, text: str, role: str = "user") -> Message:
    return Message.objects.create(
        thread=thread, role=role, content=[{"type": "text", "text": {"value": text, "annotations": []}}]
    )


def test_first_question_titles_the_conversation_and_new_ones_go_on_top(alice, assistant) -> None:
    first = conversations.current(alice)
    assert first is not None
    chat.send(
        alice,
        "How do   I bake\nsourdough bread at home without a starter that is already going?",
        thread=first,
    )
    first.refresh_from_db()
    assert first.title == "How do I bake sourdough bread at home without a starter that is already going?"
    second = conversations.start_new(alice)
    assert second.id != first.id
    assert conversations.start_new(alice).id == second.id  # an empty one is reused, not piled up
    assert [e.id for e in conversations.listing(alice).entries] == [second.id, first.id]
    assert conversations.current(alice) == second  # the returning user lands on the newest
    chat.send(alice, "x" * 200, thread=second)
    second.refresh_from_db()
    assert len(second.title) <= conversations.TITLE_CHARS + 1 and second.title.endswith("…")


def test_listing_pages_by_activity_with_a_keyset_cursor(alice, bob) -> None:
    now = timezone.now()
    made = []
    for i in range(7):
        t = Thread.objects.create(
            owner=alice, is_chat=True, title=f"t{i}", last_activity_at=now - timedelta(minutes=i)
        )
        made.append(t.id)
    Thread.objects.create(owner=bob, is_chat=True, title="bob's")
    Thread.objects.create(owner=alice, is_chat=False, title="an API thread")
    seen = []
    after = ""
    while True:
        page = conversations.listing(alice, after=after, limit=3)
        seen += [e.id for e in page.entries]
        if page.after is None:
            break
        after = page.after
    assert seen == made


def test_search_finds_titles_and_message_text_of_this_user_only(alice, bob) -> None:
    a1 = Thread.objects.create(owner=alice, is_chat=True, title="Trip to Bergen")
    a2 = Thread.objects.create(owner=alice, is_chat=True, title="Cooking")
    _msg(a2, "How long do I boil an ÉGG for?")
    _msg(a2, "About seven minutes.", role="assistant")
    b1 = Thread.objects.create(owner=bob, is_chat=True, title="bob")
    _msg(b1, "egg salad")
    assert [e.id for e in conversations.listing(alice, query="bergen").entries] == [a1.id]
    assert [e.id for e in conversations.listing(alice, query="égg").entries] == [a2.id]
    assert [e.id for e in conversations.listing(alice, query="SEVEN minutes").entries] == [a2.id]
    assert conversations.listing(alice, query="salad").entries == []
    assert conversations.listing(alice, query="100%").entries == []  # LIKE wildcards are literal


def test_api_threads_are_never_indexed_and_their_messages_cost_no_index_query(
    alice, django_assert_num_queries
) -> None:
    api = Thread.objects.create(owner=alice, title="")
    chat_thread = Thread.objects.create(owner=alice, is_chat=True)
    with django_assert_num_queries(1):  # the INSERT; no search_text UPDATE
        m = _msg(api, "nothing to see")
    with django_assert_num_queries(1):  # the INSERT, search_text in it
        c = _msg(chat_thread, "Something To Find")
    assert Message.objects.get(id=m.id).search_text == ""
    assert Message.objects.get(id=c.id).search_text == "something to find"
    # Saved without the thread at hand: Message.save's second UPDATE, whose join decides.
    fresh = Message.objects.get(id=m.id)
    fresh.save()
    assert Message.objects.get(id=m.id).search_text == ""
    fresh = Message.objects.get(id=c.id)
    fresh.content = [{"type": "text", "text": {"value": "Changed Words", "annotations": []}}]
    with django_assert_num_queries(2):  # the UPDATE, then the search_text one
        fresh.save(update_fields=["content"])
    assert Message.objects.get(id=c.id).search_text == "changed words"
    # With the thread at hand, a final reply's text and its search text are one UPDATE.
    c.content = [{"type": "text", "text": {"value": "Final Reply", "annotations": []}}]
    with django_assert_num_queries(1):
        c.save(update_fields=["content"])
    assert Message.objects.get(id=c.id).search_text == "final reply"


def test_search_sees_a_streamed_reply_once_it_is_final(executor, alice, assistant) -> None:
    fake.script(fake.text_turn("The capital ", "is Ouagadougou."))
    q, run = chat.send(alice, "capital of Burkina Faso?")
    wait_run(run.id)
    assert [e.id for e in conversations.listing(alice, query="ouagadougou").entries] == [q.thread_id]


def test_rename_checks_owner_and_words(alice, bob) -> None:
    t = Thread.objects.create(owner=alice, is_chat=True)
    assert conversations.rename(alice, t.id, "  My   plan ").title == "My plan"
    with pytest.raises(conversations.NotYours):
        conversations.rename(bob, t.id, "mine now")
    from assistants_app.errors import InvalidRequest

    with pytest.raises(InvalidRequest):
        conversations.rename(alice, t.id, "   ")
    assert Thread.objects.get(id=t.id).title == "My plan"


def test_delete_removes_messages_runs_files_and_the_threads_store(
    executor, alice, bob, assistant, settings
) -> None:
    fake.script(fake.text_turn("ok"))
    thread = conversations.current(alice)
    upload = SimpleUploadedFile("notes.txt", b"secret notes", content_type="text/plain")
    _, run = chat.send(alice, "read this", [upload], thread=thread)
    wait_run(run.id)
    f = File.objects.get(owner=alice)
    blob = f.data.path
    output = File.objects.create(
        owner=alice, filename="plot.png", purpose="assistants_output", bytes=1, origin_thread_id=thread.id
    )
    thread.refresh_from_db()
    store_ids = thread.tool_resources["file_search"]["vector_store_ids"]
    keep = conversations.start_new(alice)
    _msg(keep, "keep me")
    with pytest.raises(conversations.NotYours):
        conversations.delete(bob, thread.id)
    conversations.delete(alice, thread.id)
    assert not Thread.objects.filter(id=thread.id).exists()
    assert not Message.objects.filter(thread_id=thread.id).exists()
    assert not Run.objects.filter(id=run.id).exists()
    assert not File.objects.filter(id__in=[f.id, output.id]).exists()
    assert not VectorStore.objects.filter(id__in=store_ids).exists()
    import os

    assert not os.path.exists(blob)
    assert Message.objects.filter(thread=keep).count() == 1


def test_delete_keeps_a_file_another_conversation_uses(alice, assistant) -> None:
    t1 = Thread.objects.create(owner=alice, is_chat=True)
    t2 = Thread.objects.create(owner=alice, is_chat=True)
    f = File.objects.create(owner=alice, filename="shared.txt", purpose="assistants", bytes=1)
    for t in (t1, t2):
        Message.objects.create(
            thread=t, role="user", content=[], attachments=[{"file_id": f.id, "tools": []}]
        )
    conversations.delete(alice, t1.id)
    assert File.objects.filter(id=f.id).exists()


def test_export_markdown_and_json_follow_the_current_path(alice, assistant) -> None:
    t = Thread.objects.create(owner=alice, is_chat=True, title="Eggs")
    _msg(t, "How long?")
    old = _msg(t, "Old answer", role="assistant")
    Message.objects.filter(id=old.id).update(superseded=True)
    m = _msg(t, "Seven **minutes**.", role="assistant")
    Message.objects.filter(id=m.id).update(assistant_id=assistant.id)
    md = export.as_markdown(t)
    assert md.startswith("# Eggs\n") and "How long?" in md and "Seven **minutes**." in md
    assert "Old answer" not in md and "## Helper" in md
    data = json.loads(export.as_json(t))
    assert [(x["role"], x["text"]) for x in data["messages"]] == [
        ("user", "How long?"),
        ("assistant", "Seven **minutes**."),
    ]
    assert data["title"] == "Eggs" and data["messages"][1]["assistant"] == "Helper"
