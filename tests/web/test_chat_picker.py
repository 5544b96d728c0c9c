"""The chat page's assistant picker and attach control, through the test client (the rules are
services/chat_assistants.py's, tested in tests/services/test_chat_picker.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from assistants_app.models import Assistant, File, Message, Run, Thread
from assistants_app.services import conversations

HX: dict[str, Any] = {"HTTP_HX_REQUEST": "true"}
FILE_TOOLS = [{"type": "file_search"}, {"type": "code_interpreter"}]


@pytest.fixture
def default(db):
    return Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True, tools=FILE_TOOLS)


@pytest.fixture
def nova(db):
    return Assistant.objects.create(name="Nova", model="nova-1", chat_visible=True)


@pytest.fixture
def client_alice(client, alice):
    client.force_login(alice)
    return client


def _selected(html: str) -> list[str]:
    return re.findall(r'<option value="(asst_\w+)" selected>', html)


def test_the_page_offers_a_labelled_picker_with_the_default_preselected(client_alice, default, nova) -> None:
    Assistant.objects.create(name="Hidden", model="m")
    html = client_alice.get("/").content.decode()
    assert '<label for="assistant-select">Assistant</label>' in html
    assert 'hx-post="/chat/assistant/"' in html and 'hx-trigger="change"' in html
    assert _selected(html) == [default.id]
    assert ">Nova</option>" in html and "Hidden" not in html
    # The default can read files: attaching is on, and no note.
    assert re.search(r'<input id="composer-file"[^>]*accept=', html)
    assert re.search(r'<p id="attach-note" class="attach-note" hidden>', html)


def test_with_only_the_default_there_is_nothing_to_pick(client_alice, default) -> None:
    html = client_alice.get("/").content.decode()
    assert 'id="assistant-picker"' in html and "assistant-select" not in html


def test_picking_stores_it_and_answers_with_the_picker_and_the_attach_control(
    client_alice, alice, default, nova
) -> None:
    thread = conversations.current(alice)
    r = client_alice.post("/chat/assistant/", {"thread": thread.id, "assistant": nova.id}, **HX)
    assert r.status_code == 200
    html = r.content.decode()
    assert Thread.objects.get(id=thread.id).chat_assistant_id == nova.id
    assert _selected(html) == [nova.id] and 'data-assistant-name="Nova"' in html
    # Nova has no file tools: the attach control is off, out of band, with its note in words.
    assert re.search(r'<span id="composer-attach"[^>]*hx-swap-oob="outerHTML"', html)
    assert re.search(r'<input id="composer-file"[^>]*disabled', html)
    assert "Nova can&#x27;t read files" in html and "pick Helper" in html
    # Reloading shows the same: the choice is the conversation's.
    page = client_alice.get(f"/c/{thread.id}/").content.decode()
    assert _selected(page) == [nova.id] and re.search(r'<input id="composer-file"[^>]*disabled', page)
    assert re.search(r'<p id="attach-note" class="attach-note">Nova can', page)
    assert 'placeholder="Message Nova…"' in page


@pytest.mark.parametrize("which", ["hidden", "api"])
def test_a_pick_of_an_assistant_not_offered_is_refused_in_words(
    client_alice, alice, default, nova, which
) -> None:
    target = (
        Assistant.objects.create(name="Draft", model="m")
        if which == "hidden"
        else Assistant.objects.create(owner=alice, name="Mine", model="m", chat_visible=True)
    )
    thread = conversations.current(alice)
    r = client_alice.post("/chat/assistant/", {"thread": thread.id, "assistant": target.id}, **HX)
    assert r.status_code == 400
    html = r.content.decode()
    assert "That assistant isn&#x27;t available in the chat" in html
    assert _selected(html) == [default.id]  # the picker as it really is
    assert Thread.objects.get(id=thread.id).chat_assistant_id is None


def test_a_pick_in_another_users_conversation_is_a_404(client, alice, bob, default, nova) -> None:
    thread = conversations.current(alice)
    client.force_login(bob)
    r = client.post("/chat/assistant/", {"thread": thread.id, "assistant": nova.id}, **HX)
    assert r.status_code == 404
    assert Thread.objects.get(id=thread.id).chat_assistant_id is None


def test_without_htmx_a_pick_redirects_to_the_conversation(client_alice, alice, default, nova) -> None:
    thread = conversations.current(alice)
    r = client_alice.post("/chat/assistant/", {"thread": thread.id, "assistant": nova.id})
    assert r.status_code == 302 and r["Location"] == f"/c/{thread.id}/"


def test_a_file_sent_anyway_to_an_assistant_without_file_tools_is_refused(
    client_alice, alice, default, nova
) -> None:
    thread = conversations.current(alice)
    client_alice.post("/chat/assistant/", {"thread": thread.id, "assistant": nova.id}, **HX)
    upload = SimpleUploadedFile("notes.txt", b"secret", content_type="text/plain")
    r = client_alice.post(
        "/chat/send/", {"thread": thread.id, "text": "read it", "attachments": upload}, **HX
    )
    assert r.status_code == 400
    assert "Nova can&#x27;t read files" in r.content.decode() and "notes.txt" in r.content.decode()
    assert File.objects.count() == 0 and Message.objects.count() == 0 and Run.objects.count() == 0


def test_after_staff_hide_the_picked_assistant_the_next_send_uses_the_default_and_says_so(
    client_alice, alice, default, nova
) -> None:
    thread = conversations.current(alice)
    client_alice.post("/chat/assistant/", {"thread": thread.id, "assistant": nova.id}, **HX)
    Assistant.objects.filter(id=nova.id).update(chat_visible=False)
    r = client_alice.post("/chat/send/", {"thread": thread.id, "text": "hello?"}, **HX)
    assert r.status_code == 200
    assert Run.objects.get().assistant_id == default.id
    html = r.content.decode()
    assert "Nova is no longer available in the chat, so Helper answers" in html
    assert re.search(r'<div id="assistant-picker"[^>]*hx-swap-oob="outerHTML"', html)
    # Attaching is back on with the default (it reads files).
    assert re.search(r'<input id="composer-file"[^>]*accept=', html)


def test_a_default_without_file_tools_turns_attaching_off_before_sending(client_alice, db) -> None:
    Assistant.objects.create(
        name="Plain", model="m", is_default=True, tools=[{"type": "function", "function": {"name": "f"}}]
    )
    html = client_alice.get("/").content.decode()
    assert re.search(r'<input id="composer-file"[^>]*disabled', html)
    assert "Plain can&#x27;t read files (it has neither file search nor the code interpreter)" in html
    assert "To attach files, pick" not in html  # there is nobody else to pick
