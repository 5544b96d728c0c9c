"""Sign-up with approval (CHAT_SIGNUP=approval, issue 12.9) and the staff-only Admin link (12.12), as
a person and an administrator would go through them, in headless Chromium."""

from __future__ import annotations

import secrets
from typing import Any

from tests.support.browser import PASSWORD, new_page
from tests.support.live_server import LiveServer

LIVE_SETTINGS = {"CHAT_SIGNUP": "approval"}


def _log_in(page: Any, server: str, username: str) -> None:
    page.goto(f"{server}/accounts/login/")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_a_waiting_sign_up_is_approved_by_staff_through_the_admin_link(
    browser: Any, server: str, live: LiveServer
) -> None:
    name, boss = "user" + secrets.token_hex(4), "boss" + secrets.token_hex(4)
    live.shell(
        "from django.contrib.auth.models import User; "
        f"User.objects.create_superuser({boss!r}, 'boss@example.com', {PASSWORD!r})"
    )
    person, admin = new_page(browser), new_page(browser)
    try:
        person.goto(f"{server}/accounts/signup/")
        assert "approves new accounts" in person.locator("main").inner_text()
        person.get_by_label("Username").fill(name)
        person.locator("#id_password1").fill(PASSWORD)
        person.locator("#id_password2").fill(PASSWORD)
        person.get_by_role("button", name="Sign up").click()
        person.wait_for_url(f"{server}/accounts/signup/waiting/")
        assert "waiting for an administrator's approval" in person.locator("#awaiting-approval").inner_text()
        # Logging in before approval shows the same page, and the chat stays closed.
        _log_in(person, server, name)
        person.locator("#awaiting-approval").wait_for()
        person.goto(f"{server}/")
        assert "/accounts/login/" in person.url

        _log_in(admin, server, boss)
        admin.wait_for_url(f"{server}/")
        admin.get_by_role("link", name="Admin", exact=True).click()
        admin.wait_for_url(f"{server}/admin/")
        admin.goto(f"{server}/admin/auth/user/")
        admin.get_by_role("link", name="Waiting for approval").click()
        row = admin.locator("#result_list tbody tr", has_text=name)
        row.locator("input[name=_selected_action]").check()
        admin.locator("select[name=action]").select_option("approve_selected")
        admin.get_by_role("button", name="Run").or_(admin.get_by_role("button", name="Go")).first.click()
        assert "Approved 1 sign-up" in admin.locator(".messagelist").inner_text()

        _log_in(person, server, name)
        person.wait_for_url(f"{server}/")
        person.locator("#chat").wait_for()
        assert person.get_by_role("link", name="Admin", exact=True).count() == 0  # staff only
        assert not person.errors and not admin.errors
    finally:
        person.context.close()
        admin.context.close()
