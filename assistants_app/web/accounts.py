"""Sign-up, log-in and password-reset pages (the other account pages are Django's own views).

They parse, call services/accounts.py, and render: the rules (CHAT_SIGNUP, invitations, the first
account, approval, whether mail reaches anyone) are there.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth import views as auth_views
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.models import User
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET

from assistants_app.services import accounts


def account_links(request: HttpRequest) -> dict[str, Any]:
    """Template context for every page: whether to offer sign-up and mailed password resets."""
    return {"signup_offered": accounts.signup_offered()}


class SignUpForm(UserCreationForm[User]):
    email = forms.EmailField(required=False, help_text="Optional; used only to reset a forgotten password.")

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


def _refused(request: HttpRequest, exc: accounts.SignUpRefused) -> HttpResponse:
    return render(
        request, "registration/signup.html", {"refusal": exc.message, "closed": exc.closed}, status=exc.status
    )


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("chat")
    token = (request.POST.get("invite") or request.GET.get("invite") or "").strip()
    try:
        ticket = accounts.admission(token or None)
    except accounts.SignUpRefused as exc:
        return _refused(request, exc)
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            done = accounts.sign_up(
                form.save(commit=False), token or None, site=request.build_absolute_uri("/")
            )
        except accounts.SignUpRefused as exc:
            return _refused(request, exc)
        if not done.active:
            return redirect("signup_waiting")
        login(request, done.user, backend="django.contrib.auth.backends.ModelBackend")
        if done.administrator:
            messages.success(
                request, "Yours is the first account on this server, so it is the administrator: see “Admin”."
            )
        return redirect("chat")
    return render(request, "registration/signup.html", {"form": form, "ticket": ticket, "invite": token})


@require_GET
def signup_waiting(request: HttpRequest) -> HttpResponse:
    return render(request, "registration/awaiting_approval.html", {"message": accounts.WAITING})


class LoginForm(AuthenticationForm):
    def clean(self) -> dict[str, Any]:
        try:
            return super().clean()
        except ValidationError:
            # Never a password check while locked out (django-axes marks the request).
            if self.request is not None and not getattr(self.request, "axes_locked_out", False):
                username = str(self.cleaned_data.get("username") or "")
                password = str(self.cleaned_data.get("password") or "")
                if username and password and accounts.waiting_login(username, password):
                    raise ValidationError(accounts.WAITING, code="awaiting_approval") from None
            raise


class LoginView(auth_views.LoginView):
    form_class = LoginForm

    def form_invalid(self, form: Any) -> HttpResponse:
        if form.has_error(NON_FIELD_ERRORS, "awaiting_approval"):
            return render(
                self.request, "registration/awaiting_approval.html", {"message": accounts.WAITING}, status=403
            )
        return super().form_invalid(form)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's, unless mail cannot reach anyone: then the page says so instead of "check your
    e-mail", and nothing is sent (a reset link in the server log is a way into the account for
    whoever reads the log)."""

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not accounts.mail_delivers():
            return render(request, "registration/password_reset_unavailable.html")
        return super().dispatch(request, *args, **kwargs)
