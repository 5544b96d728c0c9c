"""services/accounts.py: who may sign up (CHAT_SIGNUP, invitations), the first account, approval,
and whether mail reaches anyone. The pages around them: tests/web/test_accounts.py."""

from __future__ import annotations

import sys
import threading
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import User
from django.db import connection, transaction
from django.utils import timezone

from assistants_app.models import AccountApproval, Invitation
from assistants_app.services import accounts


def new_user(name: str) -> User:
    """What the sign-up form hands the service: an unsaved user with a password."""
    user = User(username=name, email=f"{name}@example.com")
    user.set_password(f"{name}-password-123")
    return user


def test_the_first_account_becomes_the_administrator_and_only_the_first(db) -> None:
    first = accounts.sign_up(new_user("carol"))
    assert first.administrator and first.active
    assert first.user.is_staff and first.user.is_superuser  # what bootstrap's create_superuser makes
    second = accounts.sign_up(new_user("dave"))
    assert not second.administrator and second.active
    second.user.refresh_from_db()
    assert not second.user.is_staff and not second.user.is_superuser


def test_an_existing_account_means_no_administrator_by_sign_up(alice) -> None:
    done = accounts.sign_up(new_user("carol"))
    assert not done.administrator and not done.user.is_staff


@pytest.mark.django_db(transaction=True)
def test_two_first_sign_ups_at_once_make_one_administrator(monkeypatch) -> None:
    # Each sign-up waits, right after its first "no accounts yet?" read that counts, for the other one
    # to have read too (up to 1 s). Checking and then creating without serializing would let both
    # read "none" and both become staff; with the lock the second cannot read until the first has
    # committed (on SQLite it cannot even begin: the wait times out and the first goes on alone).
    barrier = threading.Barrier(2, timeout=1.0)
    real = accounts._no_accounts
    met = threading.local()

    def rendezvous() -> bool:
        result = real()
        if sys._getframe(1).f_code.co_name == "_claim_first_account" and not getattr(met, "done", False):
            met.done = True
            try:
                barrier.wait()
            except threading.BrokenBarrierError:
                pass
        return result

    monkeypatch.setattr(accounts, "_no_accounts", rendezvous)
    results: list[accounts.SignedUp] = []
    errors: list[BaseException] = []

    def sign_up(name: str) -> None:
        try:
            results.append(accounts.sign_up(new_user(name)))
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sign_up, args=(name,)) for name in ("carol", "dave")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors and len(results) == 2
    assert sorted(r.administrator for r in results) == [False, True]
    assert get_user_model().objects.filter(is_staff=True).count() == 1
    assert get_user_model().objects.filter(is_superuser=True).count() == 1


def test_approval_mode_keeps_new_accounts_out_until_staff_approve(settings, staff) -> None:
    settings.CHAT_SIGNUP = "approval"
    done = accounts.sign_up(new_user("carol"))
    assert not done.active and not done.administrator
    carol = User.objects.get(username="carol")
    assert not carol.is_active  # so Django refuses it a login, a session and API keys
    assert accounts.is_waiting(carol)
    assert list(accounts.waiting_for_approval()) == [carol]
    assert accounts.waiting_login("carol", "carol-password-123")
    assert not accounts.waiting_login("carol", "wrong-password")
    assert not accounts.waiting_login("staff", "staff-password-123")  # not waiting

    assert accounts.approve(User.objects.all(), by=staff) == 1  # only carol was waiting
    carol.refresh_from_db()
    assert carol.is_active and not accounts.is_waiting(carol)
    approval = AccountApproval.objects.get(user=carol)
    assert approval.approved_by == staff and approval.approved_at is not None
    assert not accounts.waiting_login("carol", "carol-password-123")


def test_approving_leaves_a_user_staff_deactivated_alone(settings, staff, alice) -> None:
    User.objects.filter(pk=alice.pk).update(is_active=False)
    assert accounts.approve([alice], by=staff) == 0
    alice.refresh_from_db()
    assert not alice.is_active


def test_the_first_account_is_never_held_for_approval(settings, db) -> None:
    settings.CHAT_SIGNUP = "approval"
    done = accounts.sign_up(new_user("carol"))
    assert done.active and done.administrator
    assert not AccountApproval.objects.exists()


def test_closed_mode_refuses_sign_up_and_saves_nothing(settings, alice) -> None:
    settings.CHAT_SIGNUP = "closed"
    assert not accounts.signup_offered()
    with pytest.raises(accounts.SignUpRefused) as refused:
        accounts.sign_up(new_user("carol"))
    assert refused.value.closed and refused.value.status == 403
    assert "invitation" in refused.value.message
    assert not User.objects.filter(username="carol").exists()


@pytest.mark.parametrize("mode", ["open", "approval", "closed"])
def test_an_invitation_works_once_in_every_mode(settings, staff, mode) -> None:
    settings.CHAT_SIGNUP = mode
    new = accounts.create_invitation(staff, note="for carol")
    assert Invitation.objects.get().digest != new.token  # only a digest is stored
    done = accounts.sign_up(new_user("carol"), new.token)
    assert done.active and not done.user.is_staff
    row = Invitation.objects.get()
    assert row.used_by == done.user and row.used_at is not None
    assert accounts.invitation_state(row) == "used by carol"

    with pytest.raises(accounts.SignUpRefused) as refused:
        accounts.sign_up(new_user("dave"), new.token)
    assert refused.value.status == 410 and "already used" in refused.value.message
    assert not User.objects.filter(username="dave").exists()


def test_a_link_used_between_page_and_submit_creates_no_account(staff) -> None:
    new = accounts.create_invitation(staff)
    ticket = accounts.admission(new.token)  # the page was shown; then someone else used the link
    Invitation.objects.update(used_at=timezone.now())
    with pytest.raises(accounts.SignUpRefused, match="already used"), transaction.atomic():
        accounts._use_invitation(ticket.invitation, staff, new.token)  # type: ignore[arg-type]
    with pytest.raises(accounts.SignUpRefused, match="already used"):
        accounts.sign_up(new_user("carol"), new.token)
    assert not User.objects.filter(username="carol").exists()


def test_expired_and_unknown_invitations_say_so(settings, staff) -> None:
    settings.CHAT_SIGNUP = "closed"
    new = accounts.create_invitation(staff, days=1)
    Invitation.objects.update(expires_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(accounts.SignUpRefused) as expired:
        accounts.sign_up(new_user("carol"), new.token)
    assert expired.value.status == 410 and "expired on" in expired.value.message
    assert accounts.invitation_state(Invitation.objects.get()) == "expired"
    with pytest.raises(accounts.SignUpRefused) as unknown:
        accounts.admission("not-a-real-token")
    assert unknown.value.status == 404 and "not valid" in unknown.value.message
    with pytest.raises(ValueError):
        accounts.create_invitation(staff, days=0)


def test_mail_reaches_people_only_with_a_real_backend(settings) -> None:
    for backend in ("console", "locmem", "dummy", "filebased"):
        settings.MAILERS = {"default": {"BACKEND": f"django.core.mail.backends.{backend}.EmailBackend"}}
        assert not accounts.mail_delivers(), backend
    settings.MAILERS = {"default": {"BACKEND": "django.core.mail.backends.smtp.EmailBackend"}}
    assert accounts.mail_delivers()
    settings.MAILERS = {"default": {}}  # Django's default BACKEND is SMTP
    assert accounts.mail_delivers()
    settings.MAILERS = {}
    assert not accounts.mail_delivers()


def test_bootstrap_admin_is_created_once(db) -> None:
    assert accounts.ensure_superuser("root", "root-password-123")
    assert not accounts.ensure_superuser("root", "other-password-123")
    root = User.objects.get(username="root")
    assert root.is_staff and root.is_superuser and root.check_password("root-password-123")


def test_bootstrap_says_how_the_first_administrator_is_made(settings, db) -> None:
    import io

    from django.core.management import call_command

    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    assert "the first account to sign up becomes the administrator" in out.getvalue()
    settings.CHAT_SIGNUP = "closed"
    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    assert "createsuperuser" in out.getvalue()
    settings.ADMIN_USERNAME, settings.ADMIN_PASSWORD = "root", "root-password-123"
    out = io.StringIO()
    call_command("bootstrap", stdout=out)
    assert "Created superuser root" in out.getvalue() and "No accounts yet" not in out.getvalue()
    assert User.objects.get(username="root").is_superuser
