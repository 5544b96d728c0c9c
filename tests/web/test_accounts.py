"""The account pages and their admin, through Django's test client: sign-up in each CHAT_SIGNUP
mode, invitations made in the admin, approval in the admin, the first account's Admin link, and
password reset with and without a mail server. The rules: tests/services/test_accounts.py."""

from __future__ import annotations

import re
import socket
from datetime import timedelta
from email import message_from_bytes
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.test import Client
from django.utils import timezone

from assistants_app.models import Assistant, Invitation

PASSWORD = "a-Long-pass-987"


@pytest.fixture
def assistant(db):
    return Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True)


def sign_up(client: Client, name: str, invite: str = "") -> Any:
    data = {"username": name, "email": f"{name}@example.com", "password1": PASSWORD, "password2": PASSWORD}
    if invite:
        data["invite"] = invite
    return client.post("/accounts/signup/", data)


@pytest.fixture
def staff_browser(staff) -> Client:
    """Staff in a client of their own (the `client` fixture is the person signing up)."""
    c = Client()
    c.force_login(staff)
    return c


def log_in(client: Client, name: str, password: str = PASSWORD) -> Any:
    return client.post("/accounts/login/", {"username": name, "password": password})


# --- the first account -----------------------------------------------------------------------------
def test_first_sign_up_on_a_fresh_install_can_open_the_admin(client, assistant) -> None:
    page = client.get("/accounts/signup/")
    assert b"becomes its administrator" in page.content
    response = sign_up(client, "carol")
    assert response.status_code == 302 and response["Location"] == "/"
    chat = client.get("/")
    assert chat.status_code == 200
    assert b'id="admin-link"' in chat.content and b'href="/admin/"' in chat.content
    assert client.get("/admin/").status_code == 200

    other = Client()
    assert b"becomes its administrator" not in other.get("/accounts/signup/").content
    assert sign_up(other, "dave").status_code == 302
    page = other.get("/")
    assert page.status_code == 200 and b'id="admin-link"' not in page.content
    assert other.get("/admin/").status_code == 302  # to the admin's login: dave is not staff


# --- approval --------------------------------------------------------------------------------------
def test_approval_mode_queues_the_user_until_staff_approve_in_the_admin(
    client, settings, staff_browser, assistant
) -> None:
    settings.CHAT_SIGNUP = "approval"
    assert b"approves new accounts" in client.get("/accounts/signup/").content
    response = sign_up(client, "carol")
    assert response.status_code == 302 and response["Location"] == "/accounts/signup/waiting/"
    waiting = client.get(response["Location"])
    assert b"is waiting for an administrator" in waiting.content
    # Not logged in, and cannot log in: the right password gets the same plain page, a wrong one
    # the usual error (no hint that the account exists).
    assert client.get("/").status_code == 302
    assert client.post("/chat/send/", {"text": "hi"}).status_code == 302
    right = log_in(client, "carol")
    assert right.status_code == 403 and b"is waiting for an administrator" in right.content
    wrong = log_in(client, "carol", "not-the-password")
    assert wrong.status_code == 200 and b"waiting" not in wrong.content and b"form-error" in wrong.content
    assert client.get("/").status_code == 302

    # Staff find them with the list filter and approve them with the action.
    carol, staff = User.objects.get(username="carol"), User.objects.get(username="staff")
    listing = staff_browser.get("/admin/auth/user/?approval=waiting")
    assert listing.status_code == 200 and b"Waiting for approval" in listing.content
    assert f"/admin/auth/user/{carol.pk}/change/".encode() in listing.content
    assert f"/admin/auth/user/{staff.pk}/change/".encode() not in listing.content
    done = staff_browser.post(
        "/admin/auth/user/", {"action": "approve_selected", "_selected_action": [carol.pk]}, follow=True
    )
    assert b"Approved 1 sign-up" in done.content
    listing = staff_browser.get("/admin/auth/user/?approval=waiting")
    assert f"/admin/auth/user/{carol.pk}/change/".encode() not in listing.content

    assert log_in(client, "carol").status_code == 302
    assert client.get("/").status_code == 200


def test_approvers_get_one_mail_per_window_and_the_count_on_the_admin_index(
    client, settings, staff_browser, assistant
) -> None:
    from django.contrib.auth.models import Permission
    from django.core.cache import cache

    cache.clear()
    settings.CHAT_SIGNUP = "approval"
    helper = User.objects.create_user("helper", "helper@example.com", "x", is_staff=True)
    helper.user_permissions.add(Permission.objects.get(codename="change_user"))
    User.objects.create_user("viewer", "viewer@example.com", "x", is_staff=True)  # may not approve
    User.objects.create_superuser("nomail", "", "x")  # nowhere to write to

    assert staff_browser.get("/admin/").content.count(b"waiting for approval") == 0
    assert sign_up(client, "carol").status_code == 302
    assert sorted(m.to[0] for m in mail.outbox) == ["helper@example.com", "staff@example.com"]
    assert all(len(m.to) == 1 for m in mail.outbox)  # approvers do not see each other's address
    notice = mail.outbox[0]
    assert notice.subject == "A sign-up is waiting for your approval"
    assert "http://testserver/admin/auth/user/?approval=waiting" in notice.body

    # A crowd of sign-ups is one mail per window, however many there are; the index counts them.
    assert sign_up(Client(), "dave").status_code == 302
    assert len(mail.outbox) == 2
    index = staff_browser.get("/admin/").content.decode()
    assert "2 sign-ups are waiting for approval." in index
    assert 'href="/admin/auth/user/?approval=waiting"' in index
    viewer = Client()
    viewer.force_login(User.objects.get(username="viewer"))
    assert b"waiting for approval" not in viewer.get("/admin/").content

    waiting = User.objects.filter(username__in=["carol", "dave"]).values_list("pk", flat=True)
    staff_browser.post("/admin/auth/user/", {"action": "approve_selected", "_selected_action": list(waiting)})
    assert b"waiting for approval." not in staff_browser.get("/admin/").content

    cache.clear()  # the window is over
    assert sign_up(Client(), "erin").status_code == 302
    assert len(mail.outbox) == 4 and mail.outbox[-1].subject == "A sign-up is waiting for your approval"


def test_a_failing_mail_server_loses_the_notice_not_the_sign_up(client, settings, staff, monkeypatch) -> None:
    from django.core.cache import cache

    from assistants_app.services import accounts

    def refuse(*args: object, **kwargs: object) -> int:
        raise ConnectionRefusedError("no SMTP server")

    cache.clear()
    settings.CHAT_SIGNUP = "approval"
    monkeypatch.setattr(accounts, "send_mass_mail", refuse)
    response = sign_up(client, "carol")
    assert response.status_code == 302 and response["Location"] == "/accounts/signup/waiting/"
    assert User.objects.filter(username="carol", is_active=False).exists()
    # Nor a cache that is down (Redis in production).
    monkeypatch.setattr(cache, "add", refuse)
    response = sign_up(Client(), "dave")
    assert response.status_code == 302 and response["Location"] == "/accounts/signup/waiting/"
    assert User.objects.filter(username="dave", is_active=False).exists()


# --- closed, and invitations -------------------------------------------------------------------------
def test_closed_mode_says_so_and_offers_no_sign_up_link(client, settings, alice) -> None:
    settings.CHAT_SIGNUP = "closed"
    page = client.get("/accounts/signup/")
    assert page.status_code == 403 and b"Sign-up is closed" in page.content
    assert b'name="password1"' not in page.content
    assert sign_up(client, "carol").status_code == 403
    assert not User.objects.filter(username="carol").exists()
    login = client.get("/accounts/login/")
    assert login.status_code == 200 and b'href="/accounts/signup/"' not in login.content
    settings.CHAT_SIGNUP = "open"  # positive control: the same pages offer it when open
    assert b'href="/accounts/signup/"' in client.get("/accounts/login/").content


def test_an_invitation_made_in_the_admin_signs_up_once_even_when_closed(
    client, settings, staff_browser, assistant
) -> None:
    settings.CHAT_SIGNUP = "closed"
    form = staff_browser.get("/admin/assistants_app/invitation/add/")
    assert form.status_code == 200 and b'name="days"' in form.content
    created = staff_browser.post("/admin/assistants_app/invitation/add/", {"note": "for carol", "days": 3})
    assert created.status_code == 200 and "no-store" in created["Cache-Control"]
    found = re.search(rb'value="http://testserver(/accounts/signup/\?invite=[\w-]+)"', created.content)
    assert found is not None
    link = found.group(1).decode()
    invitation = Invitation.objects.get()
    assert invitation.note == "for carol" and invitation.created_by is not None
    assert timedelta(days=2) < invitation.expires_at - timezone.now() <= timedelta(days=3)
    assert link.split("=", 1)[1] not in str(staff_browser.get("/admin/assistants_app/invitation/").content)

    page = client.get(link)
    assert (
        page.status_code == 200 and b'name="invite"' in page.content and b"You were invited" in page.content
    )
    response = sign_up(client, "carol", invite=link.split("=", 1)[1])
    assert response.status_code == 302 and response["Location"] == "/"
    assert client.get("/").status_code == 200
    listing = staff_browser.get("/admin/assistants_app/invitation/")
    assert b"used by carol" in listing.content
    change = staff_browser.get(f"/admin/assistants_app/invitation/{invitation.pk}/change/")
    assert change.status_code == 200 and b"used by carol" in change.content

    again = Client().get(link)
    assert again.status_code == 410 and b"already used" in again.content
    assert sign_up(Client(), "dave", invite=link.split("=", 1)[1]).status_code == 410
    assert not User.objects.filter(username="dave").exists()


def test_expired_and_mangled_invitation_links_say_so(client, staff) -> None:
    from assistants_app.services import accounts

    new = accounts.create_invitation(staff)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(hours=1))
    page = client.get(new.path)
    assert page.status_code == 410 and b"expired on" in page.content
    page = client.get(new.path[:-4])
    assert page.status_code == 404 and b"not valid" in page.content


# --- password reset ------------------------------------------------------------------------------
def test_password_reset_without_a_mail_server_says_to_ask_an_administrator(client, alice, settings) -> None:
    # The tests' mail backend is Django's locmem one: nothing would reach a person.
    page = client.get("/accounts/password_reset/")
    assert page.status_code == 200 and b"cannot send e-mail" in page.content
    assert b"ask an administrator" in page.content and b'name="email"' not in page.content
    posted = client.post("/accounts/password_reset/", {"email": "alice@example.com"})
    assert b"cannot send e-mail" in posted.content and b"Check your e-mail" not in posted.content
    assert mail.outbox == []  # not even into the log


def test_staff_set_a_password_in_the_admin(staff_browser, alice, client) -> None:
    response = staff_browser.post(
        f"/admin/auth/user/{alice.pk}/password/",
        {"password1": "set-By-staff-42", "password2": "set-By-staff-42", "usable_password": "true"},
    )
    assert response.status_code == 302
    assert log_in(client, "alice", "set-By-staff-42").status_code == 302


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def smtp_server():
    """A real SMTP server on loopback (aiosmtpd), collecting what it receives."""
    from aiosmtpd.controller import Controller

    received: list[Any] = []

    class Handler:
        async def handle_DATA(self, server, session, envelope):
            received.append(envelope)
            return "250 OK"

    controller = Controller(Handler(), hostname="127.0.0.1", port=_free_port())
    controller.start()
    yield controller, received
    controller.stop()


def test_password_reset_with_an_smtp_server_mails_a_working_link(
    client, alice, settings, smtp_server
) -> None:
    controller, received = smtp_server
    settings.MAILERS = {
        "default": {
            "BACKEND": "django.core.mail.backends.smtp.EmailBackend",
            "OPTIONS": {"host": "127.0.0.1", "port": controller.port, "timeout": 10},
        }
    }
    assert b'name="email"' in client.get("/accounts/password_reset/").content
    response = client.post("/accounts/password_reset/", {"email": "alice@example.com"})
    assert response.status_code == 302 and response["Location"] == "/accounts/password_reset/done/"
    assert b"Check your e-mail" in client.get(response["Location"]).content
    assert len(received) == 1 and received[0].rcpt_tos == ["alice@example.com"]
    payload = message_from_bytes(received[0].content).get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode()
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", body)
    assert link is not None
    confirm = client.get(link.group(1), follow=True)
    assert confirm.status_code == 200 and b"new_password1" in confirm.content
    done = client.post(
        confirm.redirect_chain[-1][0], {"new_password1": "reset-Pass-777", "new_password2": "reset-Pass-777"}
    )
    assert done.status_code == 302
    assert log_in(client, "alice", "reset-Pass-777").status_code == 302
