"""The chat page, its HTMX actions and the account pages, through Django's test client."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from assistants_app.models import Assistant, File, Message, Run, Thread
from assistants_app.services import chat

HX: dict[str, Any] = {"HTTP_HX_REQUEST": "true"}


@pytest.fixture
def assistant(db):
    return Assistant.objects.create(
        name="Helper",
        model="gpt-4o",
        is_default=True,
        tools=[{"type": "file_search"}, {"type": "code_interpreter"}],
    )


@pytest.fixture
def client_alice(client, alice):
    client.force_login(alice)
    return client


# --- accounts --------------------------------------------------------------------------------------
def test_chat_requires_login(client, db) -> None:
    response = client.get("/")
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=/")
    assert client.post("/chat/send/", {"text": "hi"}).status_code == 302
    assert Run.objects.count() == 0


def test_signup_logs_in_and_opens_the_chat(client, assistant) -> None:
    page = client.get("/accounts/signup/")
    assert page.status_code == 200 and b'name="username"' in page.content
    response = client.post(
        "/accounts/signup/",
        {
            "username": "carol",
            "email": "carol@example.com",
            "password1": "a-Long-pass-987",
            "password2": "a-Long-pass-987",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/"
    page = client.get("/")
    assert page.status_code == 200
    assert b"Helper" in page.content
    assert Thread.objects.filter(owner__username="carol", is_chat=True, archived_at=None).count() == 1


def test_signup_rejects_mismatched_passwords(client, db) -> None:
    response = client.post(
        "/accounts/signup/",
        {"username": "dave", "password1": "a-Long-pass-987", "password2": "other-pass-987"},
    )
    assert response.status_code == 200
    assert b"form-error" in response.content


def test_login_logout_and_password_change(client, alice) -> None:
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-password-123"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/accounts/logout/").status_code == 405  # log out is POST only
    response = client.post(
        "/accounts/password_change/",
        {
            "old_password": "alice-password-123",
            "new_password1": "brand-New-pass-456",
            "new_password2": "brand-New-pass-456",
        },
    )
    assert response.status_code == 302
    assert client.post("/accounts/logout/").status_code == 302
    assert client.get("/").status_code == 302
    assert client.login(username="alice", password="brand-New-pass-456")


# Password reset (by mail, and without a mail server): tests/web/test_accounts.py.


# --- the chat page ---------------------------------------------------------------------------------
def test_first_visit_creates_one_thread_and_return_visits_resume_it(client_alice, alice, assistant) -> None:
    assert client_alice.get("/").status_code == 200
    assert client_alice.get("/").status_code == 200
    threads = Thread.objects.filter(owner=alice, is_chat=True)
    assert threads.count() == 1 and threads[0].archived_at is None


def test_live_thread_recovers_from_a_concurrent_insert(alice, monkeypatch) -> None:
    from assistants_app.services import conversations

    winner = Thread.objects.create(owner=alice, is_chat=True)
    real = conversations._recent
    calls = {"n": 0}

    def stale_first_read(qs):
        calls["n"] += 1
        # The first read misses the row another request has just inserted; the second, under
        # the user's row lock, sees it.
        return real(qs).none() if calls["n"] == 1 else real(qs)

    monkeypatch.setattr(conversations, "_recent", stale_first_read)
    assert chat.live_thread(alice) == winner
    assert Thread.objects.filter(owner=alice, is_chat=True).count() == 1


def test_send_posts_the_message_and_starts_a_run(client_alice, alice, assistant) -> None:
    response = client_alice.post("/chat/send/", {"text": "Hello <b>there</b>", "tab": "t1"}, **HX)
    assert response.status_code == 200
    thread = Thread.objects.get(owner=alice, is_chat=True)
    run = Run.objects.get(thread=thread)
    assert run.status == "queued" and run.assistant_id == assistant.id
    msg = Message.objects.get(thread=thread)
    assert msg.role == "user" and msg.text == "Hello <b>there</b>"
    body = response.content.decode()
    assert f'id="m-{msg.id}"' in body and "Hello &lt;b&gt;there&lt;/b&gt;" in body
    assert f'"follow": "{run.id}"' in body  # the socket is told to follow this run
    assert 'data-run-active="' + run.id in body and "Stop" in body


def test_send_while_a_run_is_active_is_refused(client_alice, alice, assistant) -> None:
    assert client_alice.post("/chat/send/", {"text": "one"}, **HX).status_code == 200
    response = client_alice.post("/chat/send/", {"text": "two"}, **HX)
    assert response.status_code == 409
    assert b"still replying" in response.content
    assert Message.objects.filter(thread__owner=alice).count() == 1


def test_empty_message_is_refused_with_a_clear_error(client_alice, assistant) -> None:
    response = client_alice.post("/chat/send/", {"text": "   "}, **HX)
    assert response.status_code == 400 and b"Type a message" in response.content
    assert Run.objects.count() == 0


def test_missing_default_assistant_is_explained(client_alice, db) -> None:
    page = client_alice.get("/")
    assert page.status_code == 200 and b"No assistant is configured" in page.content
    response = client_alice.post("/chat/send/", {"text": "hi"}, **HX)
    assert response.status_code == 503 and b"bootstrap" in response.content


def test_non_htmx_send_redirects_back_to_the_page(client_alice, assistant) -> None:
    response = client_alice.post("/chat/send/", {"text": "plain form"})
    assert response.status_code == 302 and response["Location"] == "/"
    assert Run.objects.count() == 1


def test_stop_cancels_a_queued_run_and_only_the_owners(client, alice, bob, assistant) -> None:
    client.force_login(alice)
    client.post("/chat/send/", {"text": "hi"}, **HX)
    run = Run.objects.get()
    client.force_login(bob)
    assert client.post("/chat/stop/", {"run_id": run.id}, **HX).status_code == 404
    assert Run.objects.get().status == "queued"
    client.force_login(alice)
    response = client.post("/chat/stop/", {"run_id": run.id}, **HX)
    assert response.status_code == 200
    assert Run.objects.get().status == "cancelled"
    assert b"data-run-active" not in response.content


def test_retry_starts_a_new_run_without_a_new_message(client_alice, alice, assistant) -> None:
    client_alice.post("/chat/send/", {"text": "hi"}, **HX)
    first = Run.objects.get()
    Run.objects.filter(id=first.id).update(
        status="failed", last_error={"code": "server_error", "message": "Upstream exploded"}
    )
    page = client_alice.get("/")
    # Plain words for the user; the upstream's technical message stays with staff.
    assert b"Upstream exploded" not in page.content and b"Something went wrong" in page.content
    assert b"Retry" in page.content
    response = client_alice.post("/chat/retry/", **HX)
    assert response.status_code == 200
    second = Run.objects.exclude(id=first.id).get()
    assert second.status == "queued"
    assert f'"follow": "{second.id}"'.encode() in response.content
    assert Message.objects.filter(thread__owner=alice).count() == 1


def test_new_conversation_keeps_the_old_one_in_the_list(client_alice, alice, assistant) -> None:
    client_alice.post("/chat/send/", {"text": "remember me"}, **HX)
    old = Thread.objects.get(owner=alice)
    response = client_alice.post("/chat/new/", **HX)
    fresh = Thread.objects.exclude(id=old.id).get(owner=alice)
    assert response.status_code == 204 and response["HX-Redirect"] == f"/c/{fresh.id}/"
    assert fresh.is_chat
    page = client_alice.get("/").content.decode()  # lands on the newest: the fresh one
    assert f'data-thread="{fresh.id}"' in page
    assert "remember me" in page  # the old one, one click away in the list
    assert f'href="/c/{old.id}/"' in page
    assert "remember me" in client_alice.get(f"/c/{old.id}/").content.decode()


def test_history_pages_newest_first_then_older(client_alice, alice, assistant) -> None:
    thread = chat.live_thread(alice)
    assert thread is not None
    ids = [
        Message.objects.create(
            thread=thread,
            role="user",
            content=[{"type": "text", "text": {"value": f"note {i:03d}", "annotations": []}}],
        ).id
        for i in range(70)
    ]
    page = client_alice.get("/").content.decode()
    shown = re.findall(r"note (\d{3})", page)
    assert shown == [f"{i:03d}" for i in range(40, 70)]  # the newest 30, oldest of them at the top
    more = re.search(
        r'hx-get="/chat/history/\?before=(msg_\w+)&amp;thread=thread_\w+" hx-trigger="revealed"', page
    )
    assert more is not None and more.group(1) == ids[40]
    older = client_alice.get(f"/chat/history/?before={ids[40]}", **HX).content.decode()
    assert re.findall(r"note (\d{3})", older) == [f"{i:03d}" for i in range(10, 40)]
    last = client_alice.get(f"/chat/history/?before={ids[10]}", **HX).content.decode()
    assert re.findall(r"note (\d{3})", last) == [f"{i:03d}" for i in range(10)]
    assert "hx-trigger" not in last  # the oldest page has no "load more"
    assert client_alice.get("/chat/history/?before=nope").status_code == 400


def test_history_is_per_user(client, alice, bob, assistant) -> None:
    thread = chat.live_thread(alice)
    assert thread is not None
    Message.objects.create(
        thread=thread,
        role="user",
        content=[{"type": "text", "text": {"value": "alice secret", "annotations": []}}],
    )
    client.force_login(bob)
    assert b"alice secret" not in client.get("/").content
    assert b"alice secret" not in client.get("/chat/history/?before=msg_zzzzzzzzzzzzzzzzzzzzzzzz").content


def test_page_leaves_the_active_runs_messages_to_the_socket(client_alice, alice, assistant) -> None:
    client_alice.post("/chat/send/", {"text": "question"}, **HX)
    run = Run.objects.get()
    Message.objects.create(
        thread=run.thread,
        role="assistant",
        run=run,
        status="in_progress",
        content=[{"type": "text", "text": {"value": "half an answ", "annotations": []}}],
    )
    page = client_alice.get("/").content.decode()
    assert "question" in page and "half an answ" not in page
    assert f"run={run.id}" in page  # the socket replays this run from its first event
    # Only sending waits for the reply: the box stays editable.
    assert '<fieldset id="composer-fields">' in page and 'id="composer-send" disabled' in page


def test_csrf_is_enforced_on_every_form(alice, assistant) -> None:
    c = Client(enforce_csrf_checks=True)
    c.force_login(alice)
    for url in ("/chat/send/", "/chat/stop/", "/chat/retry/", "/chat/new/", "/accounts/logout/"):
        assert c.post(url, {"text": "hi"}, **HX).status_code == 403, url
    page = c.get("/")
    token = page.cookies["csrftoken"].value
    assert 'name="csrfmiddlewaretoken"' in page.content.decode()
    assert '"X-CSRFToken": "' in page.content.decode()  # htmx requests send it as a header
    assert c.post("/chat/send/", {"text": "hi"}, HTTP_X_CSRFTOKEN=token, **HX).status_code == 200


# --- attachments -----------------------------------------------------------------------------------
def test_attachment_is_stored_and_attached_for_both_tools(client_alice, alice, assistant) -> None:
    upload = SimpleUploadedFile("notes.txt", b"the launch code is 1234", content_type="text/plain")
    response = client_alice.post("/chat/send/", {"text": "read this", "attachments": upload}, **HX)
    assert response.status_code == 200
    f = File.objects.get(owner=alice)
    assert f.filename == "notes.txt" and f.bytes == 23 and f.purpose == "assistants" and len(f.sha256) == 64
    msg = Message.objects.get(thread__owner=alice)
    assert msg.attachments == [
        {"file_id": f.id, "tools": [{"type": "file_search"}, {"type": "code_interpreter"}]}
    ]
    assert b"notes.txt" in response.content
    assert b"notes.txt" in client_alice.get("/").content
    download = client_alice.get(f"/chat/files/{f.id}/")
    assert download.status_code == 200 and b"".join(download.streaming_content) == b"the launch code is 1234"
    assert "attachment" in download["Content-Disposition"]


def test_attachment_over_the_size_limit_is_refused(client_alice, alice, assistant, settings) -> None:
    settings.FILE_UPLOAD_MAX_BYTES = 10
    upload = SimpleUploadedFile("big.txt", b"x" * 11, content_type="text/plain")
    response = client_alice.post("/chat/send/", {"text": "read this", "attachments": upload}, **HX)
    assert response.status_code == 413
    assert "big.txt" in response.content.decode() and "limit" in response.content.decode()
    assert File.objects.count() == 0 and Message.objects.count() == 0 and Run.objects.count() == 0


def test_attachment_of_a_disallowed_type_is_refused(client_alice, assistant) -> None:
    upload = SimpleUploadedFile("tool.exe", b"MZ...", content_type="application/octet-stream")
    response = client_alice.post("/chat/send/", {"text": "run this", "attachments": upload}, **HX)
    assert response.status_code == 415
    assert ".exe" in response.content.decode()
    assert File.objects.count() == 0 and Run.objects.count() == 0


def test_files_are_private_to_their_owner(client, alice, bob, assistant) -> None:
    client.force_login(alice)
    client.post("/chat/send/", {"text": "x", "attachments": SimpleUploadedFile("a.csv", b"a,b\n1,2\n")}, **HX)
    f = File.objects.get()
    client.force_login(bob)
    assert client.get(f"/chat/files/{f.id}/").status_code == 404


def test_history_shows_tool_activity_between_messages(client_alice, alice, assistant) -> None:
    from assistants_app.models import RunStep

    thread = chat.live_thread(alice)
    assert thread is not None
    ask = Message.objects.create(
        thread=thread,
        role="user",
        content=[{"type": "text", "text": {"value": "weather in Oslo?", "annotations": []}}],
    )
    run = Run.objects.create(
        thread=thread, assistant=assistant, assistant_ref=assistant.id, model="m", status="completed"
    )
    RunStep.objects.create(
        run=run,
        thread_id_ref=thread.id,
        assistant_ref=assistant.id,
        type="tool_calls",
        status="completed",
        step_details={
            "type": "tool_calls",
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}', "output": "<4 C>"},
                }
            ],
        },
    )
    Message.objects.create(
        thread=thread,
        role="assistant",
        run=run,
        content=[{"type": "text", "text": {"value": "It is 4 C.", "annotations": []}}],
    )
    page = client_alice.get("/").content.decode()
    i_ask, i_tool, i_answer = (
        page.index("weather in Oslo?"),
        page.index("Function get_weather"),
        page.index("It is 4 C."),
    )
    assert i_ask < i_tool < i_answer
    assert "&lt;4 C&gt;" in page and ask.id in page
