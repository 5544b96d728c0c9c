"""The conversation list, message actions, export and the signed-out flow, through the test client."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from assistants_app.models import Assistant, ChatAnswer, Feedback, Message, Run, Thread
from assistants_app.services import conversations

HX: dict[str, Any] = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def assistant(db):
    return Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True)


@pytest.fixture
def client_alice(client, alice):
    client.force_login(alice)
    return client


def _reply(thread: Thread, text: str, question: Message, assistant: Assistant) -> Message:
    run = Run.objects.create(
        thread=thread, assistant=assistant, assistant_ref=assistant.id, model="m", status="completed"
    )
    ChatAnswer.objects.create(run=run, question=question)
    return Message.objects.create(
        thread=thread,
        role="assistant",
        run=run,
        assistant_id=assistant.id,
        content=[{"type": "text", "text": {"value": text, "annotations": []}}],
    )


def _ask(thread: Thread, text: str) -> Message:
    return Message.objects.create(
        thread=thread, role="user", content=[{"type": "text", "text": {"value": text, "annotations": []}}]
    )


def test_switching_answers_with_the_pane_only_and_other_users_get_404(client, alice, bob, assistant) -> None:
    t = Thread.objects.create(owner=alice, is_chat=True, title="Eggs")
    _ask(t, "how long to boil")
    client.force_login(alice)
    pane = client.get(f"/c/{t.id}/", HTTP_HX_TARGET="chat", **HX).content.decode()
    assert pane.lstrip().startswith('<div class="chat"') and "how long to boil" in pane
    assert f"thread={t.id}" in pane and "<title>Eggs" in pane and "conversation-list" not in pane
    full = client.get(f"/c/{t.id}/").content.decode()
    assert 'id="conversation-list"' in full and 'aria-current="page"' in full
    client.force_login(bob)
    assert client.get(f"/c/{t.id}/").status_code == 404
    assert client.get(f"/c/{t.id}/export.md").status_code == 404


def test_search_rename_and_delete_through_the_list(client_alice, alice, assistant) -> None:
    a = Thread.objects.create(owner=alice, is_chat=True, title="Bergen trip")
    b = Thread.objects.create(owner=alice, is_chat=True, title="Cooking")
    _ask(b, "sourdough starter")
    found = client_alice.get("/chat/conversations/?q=sourdough", **HX).content.decode()
    assert "Cooking" in found and "Bergen" not in found
    renamed = client_alice.post(
        "/chat/rename/", {"thread": a.id, "title": "Oslo <trip>", "showing": a.id}, **HX
    )
    assert renamed.status_code == 200 and "Oslo &lt;trip&gt;" in renamed.content.decode()
    assert 'id="conversation-title" hx-swap-oob' in renamed.content.decode()
    assert Thread.objects.get(id=a.id).title == "Oslo <trip>"
    gone = client_alice.post("/chat/delete/", {"thread": b.id, "showing": a.id}, **HX)
    assert gone.status_code == 200 and "Cooking" not in gone.content.decode()
    assert not Thread.objects.filter(id=b.id).exists()
    shown = client_alice.post("/chat/delete/", {"thread": a.id, "showing": a.id}, **HX)
    assert shown.status_code == 204 and shown["HX-Redirect"] == "/"


def test_regenerate_and_version_flip(client_alice, alice, assistant) -> None:
    t = conversations.current(alice)
    q = _ask(t, "question")
    first = _reply(t, "first answer", q, assistant)
    response = client_alice.post("/chat/regenerate/", {"thread": t.id, "message": first.id}, **HX)
    assert response.status_code == 200
    body = response.content.decode()
    assert f'<div hx-swap-oob="delete:#m-{first.id}">' in body and '"follow": "run_' in body
    new_run = Run.objects.exclude(id=first.run_id).get(thread=t)
    Run.objects.filter(id=new_run.id).update(status="completed")
    second = Message.objects.create(
        thread=t,
        role="assistant",
        run=new_run,
        content=[{"type": "text", "text": {"value": "second answer", "annotations": []}}],
    )
    page = client_alice.get("/").content.decode()
    assert "second answer" in page and "first answer" not in page
    assert 'aria-label="Version 2 of 2"' in page
    flip = client_alice.post("/chat/version/", {"thread": t.id, "message": second.id, "to": "1"}, **HX)
    assert flip.status_code == 200 and flip["HX-Retarget"] == f"#m-{second.id}"
    assert "first answer" in flip.content.decode() and 'aria-label="Version 1 of 2"' in flip.content.decode()
    assert Message.objects.get(id=first.id).superseded is False
    assert Message.objects.get(id=second.id).superseded is True


def test_edit_resend_replaces_the_pair(client_alice, alice, assistant) -> None:
    t = conversations.current(alice)
    q = _ask(t, "wrogn question")
    a = _reply(t, "answer", q, assistant)
    r = client_alice.post("/chat/edit/", {"thread": t.id, "message": q.id, "text": "right question"}, **HX)
    body = r.content.decode()
    assert r.status_code == 200 and "right question" in body
    assert f'hx-swap-oob="delete:#m-{q.id}"' in body and f'hx-swap-oob="delete:#m-{a.id}"' in body
    old = client_alice.post("/chat/edit/", {"thread": t.id, "message": q.id, "text": "again"}, **HX)
    assert old.status_code == 409 or old.status_code == 400  # busy (a run is queued) or not the latest


def test_feedback_is_saved_toggled_and_private(client, alice, bob, assistant, staff) -> None:
    t = conversations.current(alice)
    a = _reply(t, "answer", _ask(t, "q"), assistant)
    client.force_login(alice)
    up = client.post("/chat/feedback/", {"message": a.id, "rating": "up"}, **HX).content.decode()
    assert 'aria-pressed="true" aria-label="Good reply"' in up and "Tell us more" in up
    client.post("/chat/feedback/", {"message": a.id, "rating": "up", "comment": "Spot on"}, **HX)
    row = Feedback.objects.get()
    assert row.rating == 1 and row.comment == "Spot on"
    client.force_login(bob)
    assert client.post("/chat/feedback/", {"message": a.id, "rating": "down"}, **HX).status_code == 404
    client.force_login(staff)
    listing = client.get("/admin/assistants_app/feedback/").content.decode()
    assert "Spot on" in listing and a.id in listing


def test_export_downloads(client_alice, alice, assistant) -> None:
    t = Thread.objects.create(owner=alice, is_chat=True, title="Trip: Bergen/Oslo")
    _ask(t, "hello")
    md = client_alice.get(f"/c/{t.id}/export.md")
    assert md["Content-Type"].startswith("text/markdown") and b"# Trip: Bergen/Oslo" in md.content
    assert 'filename="Trip-BergenOslo.md"' in md["Content-Disposition"]
    data = json.loads(client_alice.get(f"/c/{t.id}/export.json").content)
    assert data["messages"][0]["text"] == "hello"


def test_signed_out_htmx_request_gets_a_sign_in_again_fragment(client, alice, assistant) -> None:
    t = Thread.objects.create(owner=alice, is_chat=True)
    r = client.post(
        "/chat/send/",
        {"text": "my long draft", "thread": t.id},
        HTTP_HX_CURRENT_URL=f"http://testserver/c/{t.id}/",
        **HX,
    )
    assert r.status_code == 401 and r["HX-Retarget"] == "#session-notice"
    body = r.content.decode()
    assert "Sign in again" in body and f"/accounts/login/?next=%2Fc%2F{t.id}%2F" in body
    assert "<form" not in body  # no login form embedded in the page
    assert Message.objects.count() == 0
    assert client.post("/chat/send/", {"text": "x"}).status_code == 302  # a full page still redirects


def test_a_stale_csrf_token_gets_a_reload_fragment(alice, assistant) -> None:
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice)
    r = c.post("/chat/send/", {"text": "hi"}, HTTP_X_CSRFTOKEN="stale", **HX)
    assert (
        r.status_code == 403 and r["HX-Retarget"] == "#session-notice" and "out of date" in r.content.decode()
    )


def test_favicon(client, db) -> None:
    assert client.get("/favicon.ico").status_code == 301
    page = client.get("/accounts/login/").content.decode()
    assert 'rel="icon"' in page


def test_a_send_reads_the_user_row_once(client_alice, assistant, alice) -> None:
    # The session's user is the conversation's owner: checking the message must not load it again.
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    first = client_alice.post("/chat/send/", {"text": "first"}, **HX)
    assert first.status_code == 200
    Run.objects.update(status="completed")
    thread = Thread.objects.get(owner=alice)
    with CaptureQueriesContext(connection) as ctx:
        response = client_alice.post("/chat/send/", {"text": "again", "thread": thread.id}, **HX)
    assert response.status_code == 200
    # The session's, by the auth middleware (PostgreSQL also locks the row: FOR UPDATE, its pk only).
    sql = [q["sql"] for q in ctx.captured_queries]
    user_reads = [s for s in sql if 'FROM "auth_user"' in s and "FOR UPDATE" not in s]
    assert len(user_reads) == 1, user_reads


def test_a_send_reads_the_offered_assistants_twice(client_alice, assistant, alice) -> None:
    # Once to start the run with the conversation's assistant, once for the question and the picker
    # the response carries (it was three: the question's header read the default assistant again).
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as ctx:
        response = client_alice.post("/chat/send/", {"text": "hello"}, **HX)
    assert response.status_code == 200
    assert b'id="assistant-picker"' in response.content
    reads = [q["sql"] for q in ctx.captured_queries if 'FROM "assistants_app_assistant"' in q["sql"]]
    assert len(reads) == 2, reads
