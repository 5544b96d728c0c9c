"""Accounts of the chat product: who may sign up (CHAT_SIGNUP, staff invitations), the first account
of a fresh install, approval of waiting sign-ups, and whether password-reset mail reaches anyone.

The rules live here; the sign-up, login and reset views (web/accounts.py), the admin
(admin/accounts.py) and `manage.py bootstrap` call them.

A sign-up waiting for approval is an inactive user (is_active=False) with an open AccountApproval
row. Django itself then keeps them out of everything: ModelBackend refuses to log them in or to load
their session, the API refuses their keys (api/auth.py), the admin's key form does not offer them.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission, User
from django.core.cache import cache
from django.core.mail import send_mass_mail
from django.db import IntegrityError, connection, transaction
from django.db.models import Q, QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from assistants_app.models import AccountApproval, Invitation

log = logging.getLogger(__name__)

MODES = ("open", "approval", "closed")
INVITATION_DAYS = 7
MAX_INVITATION_DAYS = 90

CLOSED = "Sign-up is closed on this server. To get an account, ask an administrator for an invitation link."
WAITING = (
    "Your account was created and is waiting for an administrator's approval. "
    "You can log in once it has been approved."
)

# However many sign up (a crowd, or a bot), the approvers get at most one mail per this many seconds;
# the admin's index shows the live count meanwhile.
APPROVAL_NOTICE_SECONDS = 600
_NOTICE_KEY = "accounts:approval-notice"

# Django's mail backends that deliver nowhere: they print, keep in memory, drop, or write to files.
_MAIL_GOES_NOWHERE = (
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.locmem.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
    "django.core.mail.backends.filebased.EmailBackend",
)


class SignUpRefused(Exception):
    """A sign-up that may not go ahead, said in plain words for the person trying."""

    def __init__(self, message: str, status: int, *, closed: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.closed = closed  # sign-up itself is closed (not just this link)


@dataclass(frozen=True)
class Admission:
    """Why a sign-up may go ahead: with an invitation, or by CHAT_SIGNUP."""

    invitation: Invitation | None
    needs_approval: bool  # by CHAT_SIGNUP (unless it turns out to be the first account)
    first_account: bool  # nobody has an account yet: this one would become the administrator


@dataclass(frozen=True)
class SignedUp:
    user: User
    active: bool  # False: waiting for approval
    administrator: bool  # the installation's first account


@dataclass(frozen=True)
class NewInvitation:
    invitation: Invitation
    token: str  # shown once

    @property
    def path(self) -> str:
        return invitation_path(self.token)


# --- sign-up -----------------------------------------------------------------------------------------
def signup_mode() -> str:
    return str(settings.CHAT_SIGNUP)


def signup_offered() -> bool:
    """Whether pages offer a "Sign up" link (not when only invitations get in)."""
    return signup_mode() != "closed"


def _no_accounts() -> bool:
    return not get_user_model().objects.exists()


def admission(invitation_token: str | None) -> Admission:
    """Whether a sign-up may go ahead now, or SignUpRefused. Asked when the page is shown and again,
    authoritatively, inside sign_up()."""
    invitation = usable_invitation(invitation_token) if invitation_token else None
    if invitation is None and signup_mode() == "closed":
        raise SignUpRefused(CLOSED, status=403, closed=True)
    # The first account is never held for approval (nobody could approve it); sign_up() decides
    # that under a lock, so `first_account` here only lets the page say so.
    needs_approval = invitation is None and signup_mode() == "approval"
    return Admission(invitation, needs_approval=needs_approval, first_account=_no_accounts())


def _lock_accounts() -> None:
    """Serialize the decision "is this the first account?" between concurrent sign-ups.

    PostgreSQL: lock the user table against writes (reads go on) until the transaction ends.
    SQLite: nothing to do, the IMMEDIATE transaction already holds the database's write lock.
    """
    if connection.vendor == "postgresql":
        table = connection.ops.quote_name(get_user_model()._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {table} IN SHARE ROW EXCLUSIVE MODE")


def _claim_first_account() -> bool:
    """True for exactly one sign-up on an installation without accounts, however many race."""
    if not _no_accounts():
        return False  # the common case costs no lock
    _lock_accounts()
    return _no_accounts()  # again, under the lock: a concurrent first sign-up has committed by now


def sign_up(user: User, invitation_token: str | None = None, *, site: str = "") -> SignedUp:
    """Create `user` (unsaved, as the sign-up form built it: username, e-mail, password hash).

    The first account of an installation becomes staff and superuser (what `manage.py bootstrap`
    makes of ADMIN_USERNAME); an invited one is active in every mode, using up its invitation; in
    `approval` mode any other waits, inactive, for staff to approve it, and the approvers are told
    (`tell_approvers`; `site` is the server's address as the person signing up reached it).
    """
    ticket = admission(invitation_token)
    try:
        with transaction.atomic():
            first = _claim_first_account()
            user.is_staff = user.is_superuser = first
            user.is_active = first or not ticket.needs_approval
            user.save()
            if ticket.invitation is not None:
                _use_invitation(ticket.invitation, user, invitation_token or "")
            if not user.is_active:
                AccountApproval.objects.create(user=user)
    except IntegrityError as exc:
        # Two sign-ups with one username at once: the form's uniqueness check passed for both.
        raise SignUpRefused("That username was taken a moment ago. Please choose another.", 409) from exc
    if not user.is_active:
        tell_approvers(site)
    return SignedUp(user, active=user.is_active, administrator=first)


def ensure_superuser(username: str, password: str) -> bool:
    """`manage.py bootstrap`'s ADMIN_USERNAME / ADMIN_PASSWORD: create that superuser if missing."""
    model = get_user_model()
    if model.objects.filter(username=username).exists():
        return False
    model.objects.create_superuser(username=username, password=password, email="")
    return True


# --- invitations ---------------------------------------------------------------------------------
def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def invitation_path(token: str) -> str:
    return f"{reverse('signup')}?invite={token}"


def create_invitation(by: Any, *, note: str = "", days: int = INVITATION_DAYS) -> NewInvitation:
    """A one-time sign-up link valid for `days`; only its digest is stored."""
    if not 1 <= days <= MAX_INVITATION_DAYS:
        raise ValueError(f"An invitation is valid for 1 to {MAX_INVITATION_DAYS} days.")
    token = secrets.token_urlsafe(32)
    row = Invitation.objects.create(
        digest=_digest(token),
        note=note[:200],
        created_by=by if getattr(by, "pk", None) else None,
        expires_at=timezone.now() + timedelta(days=days),
    )
    return NewInvitation(row, token)


def _invitation_problem(row: Invitation | None) -> SignUpRefused:
    if row is None:
        return SignUpRefused(
            "This invitation link is not valid: check that it was copied whole, or ask for a new one.", 404
        )
    if row.used_at is not None:
        return SignUpRefused("This invitation link was already used. Ask for a new one if you need it.", 410)
    when = timezone.localtime(row.expires_at).strftime("%d %B %Y, %H:%M")
    return SignUpRefused(f"This invitation link expired on {when}. Ask for a new one.", 410)


def usable_invitation(token: str) -> Invitation:
    row = Invitation.objects.filter(digest=_digest(token[:200])).first()
    if row is None or row.used_at is not None or row.expires_at <= timezone.now():
        raise _invitation_problem(row)
    return row


def _use_invitation(row: Invitation, user: User, token: str) -> None:
    """Mark the invitation used by `user`; a conditional update, so one link makes one account."""
    now = timezone.now()
    used = Invitation.objects.filter(pk=row.pk, used_at__isnull=True, expires_at__gt=now).update(
        used_at=now, used_by=user
    )
    if used != 1:
        raise _invitation_problem(Invitation.objects.filter(pk=row.pk).first())


def invitation_state(row: Invitation) -> str:
    if row.used_at is not None:
        return f"used by {row.used_by}" if row.used_by else "used"
    return "expired" if row.expires_at <= timezone.now() else "open"


# --- approval ------------------------------------------------------------------------------------
def waiting_for_approval() -> QuerySet[User]:
    return get_user_model().objects.filter(
        is_active=False, approval__isnull=False, approval__approved_at__isnull=True
    )


def is_waiting(user: User) -> bool:
    """The same rule as waiting_for_approval(), for one loaded user (select_related("approval"))."""
    try:
        approval = user.approval
    except AccountApproval.DoesNotExist:
        return False
    return not user.is_active and approval.approved_at is None


def approvers() -> QuerySet[User]:
    """Active staff who may approve sign-ups (change users in the admin) and have an e-mail address."""
    may = Q(is_superuser=True)
    perm = Permission.objects.filter(codename="change_user", content_type__app_label="auth").first()
    if perm is not None:
        may |= Q(user_permissions=perm) | Q(groups__permissions=perm)
    return get_user_model().objects.filter(may, is_active=True, is_staff=True).exclude(email="").distinct()


def waiting_list_path() -> str:
    return f"{reverse('admin:auth_user_changelist')}?approval=waiting"


def tell_approvers(site: str = "") -> int:
    """Mail the approvers that sign-ups are waiting (at most once per APPROVAL_NOTICE_SECONDS);
    returns how many were mailed. A mail server or cache that fails loses the mail, never the
    sign-up (which has been committed by now)."""
    try:
        return _tell_approvers(site)
    except Exception:
        log.warning("could not mail the approvers about waiting sign-ups", exc_info=True)
        return 0


def _tell_approvers(site: str) -> int:
    if not cache.add(_NOTICE_KEY, True, timeout=APPROVAL_NOTICE_SECONDS):
        return 0
    waiting = waiting_for_approval().count()
    to = sorted(set(approvers().values_list("email", flat=True)))
    if not waiting or not to:
        return 0
    subject = (
        "A sign-up is waiting for your approval"
        if waiting == 1
        else f"{waiting} sign-ups are waiting for your approval"
    )
    body = (
        f"{subject} on the assistants server.\n\n"
        f"Approve or ignore them in the admin: {site.rstrip('/')}{waiting_list_path()}\n\n"
        f"You get at most one of these mails every {APPROVAL_NOTICE_SECONDS // 60} minutes; "
        "the admin's front page shows how many are waiting."
    )
    # One message per approver: staff addresses are not shown to each other.
    send_mass_mail([(subject, body, None, [address]) for address in to])
    return len(to)


def approve(users: Iterable[User], by: Any) -> int:
    """Let waiting sign-ups in; others among `users` are left as they are. Returns how many."""
    ids = [u.pk for u in users]
    with transaction.atomic():
        waiting = list(waiting_for_approval().filter(pk__in=ids).values_list("pk", flat=True))
        AccountApproval.objects.filter(user_id__in=waiting, approved_at__isnull=True).update(
            approved_at=timezone.now(), approved_by=by if getattr(by, "pk", None) else None
        )
        get_user_model().objects.filter(pk__in=waiting).update(is_active=True)
    return len(waiting)


def waiting_login(username: str, password: str) -> bool:
    """A failed login that was a waiting sign-up's right password: the page says why, instead of
    "wrong password". Only ever asked after the lockout check let the attempt through."""
    user = waiting_for_approval().filter(username=username[:150]).first()
    return user is not None and user.check_password(password)


# --- mail ----------------------------------------------------------------------------------------
def mail_delivers() -> bool:
    """Whether mail sent now would reach a person: not with Django's console, locmem, dummy or
    file backends (the console one only writes it into the server log). chatsite/settings.py
    always defines MAILERS (Django 6.1's mail settings)."""
    default = settings.MAILERS.get("default")
    if default is None:
        return False
    backend = import_string(str(default.get("BACKEND", "django.core.mail.backends.smtp.EmailBackend")))
    return not any(issubclass(backend, import_string(path)) for path in _MAIL_GOES_NOWHERE)
