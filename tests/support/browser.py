"""Helpers for the browser tests (tests/browser/, whose conftest.py holds the one shared Chromium)
and the chat benchmarks: Debian's chromium driven by playwright, nothing downloaded (never
`playwright install`)."""

from __future__ import annotations

import os
import secrets
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "a-Strong-pass-5813"


def unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is not installed (Debian package `chromium`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the `playwright` package is not installed"
    return None


def new_page(browser: Any, **context_options: Any) -> Any:
    """A page in a fresh browser context (own cookies and storage) that records the dialogs it
    dismissed (`page.dialogs`) and its uncaught script errors (`page.errors`)."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **context_options})
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.dialogs = []
    page.errors = []

    def on_dialog(d: Any) -> None:
        page.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    return page


def sign_up(page: Any, base: str) -> str:
    username = "user" + secrets.token_hex(4)
    page.goto(f"{base}/accounts/signup/")
    page.get_by_label("Username").fill(username)
    page.locator("#id_password1").fill(PASSWORD)
    page.locator("#id_password2").fill(PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{base}/")
    page.wait_for_function("() => document.querySelector('#chat') !== null")
    return username


def send(page: Any, message: str) -> None:
    box = page.get_by_label("Message", exact=True)
    box.fill(message)
    box.press("Enter")


def last_reply(page: Any) -> Any:
    return page.locator("#messages article.msg-assistant").last


def wait_idle(page: Any) -> None:
    page.wait_for_function("() => !document.querySelector('#run-controls [data-run-active]')")


def wait_reply_done(page: Any, count: int = 1) -> None:
    """Until the page shows `count` replies and the last one is finished."""
    page.wait_for_function(
        "(n) => { const a = [...document.querySelectorAll('#messages article.msg-assistant')];"
        " return a.length >= n && a[a.length - 1].dataset.status !== 'in_progress'"
        " && !a[a.length - 1].classList.contains('is-streaming'); }",
        arg=count,
    )
    wait_idle(page)
