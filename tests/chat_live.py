"""Shared browser-test fixtures for the chat product (a pytest plugin, see tests/conftest.py): one
headless Chromium and one live `manage.py serve` (with the HTTP fake upstream) for the whole
session, so each test costs a browser context and a sign-up, not a server start.

Debian's chromium is used as is; nothing is downloaded (never `playwright install`).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "a-Strong-pass-5813"


def browser_available() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is not installed (Debian package `chromium`)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the `playwright` package is not installed"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True, timeout=300
    )
    return done.stdout.decode()


@dataclass
class LiveServer:
    """A `manage.py serve` subprocess on a fixed port and data directory: it can be restarted."""

    env: dict[str, str]
    port: int
    data: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        log = open(self.data / "serve.log", "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/accounts/login/", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start:\n{(self.data / 'serve.log').read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def shell(self, code: str) -> str:
        return manage(self.env, "shell", "-c", code)


def make_server(upstream: FakeUpstream, data: Path, **extra: str) -> LiveServer:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"REDIS_URL", "DATABASE_URL", "DJANGO_SETTINGS_MODULE"}
    }
    env.update(
        DATA_DIR=str(data),
        DATABASE_URL=f"sqlite:///{data}/db.sqlite3",
        DJANGO_DEBUG="0",
        MODEL_BACKEND="openai",
        OPENAI_BASE_URL=upstream.base_url,
        OPENAI_API_KEY="x",
        RUN_POLL_SECONDS="0.2",
        LOG_LEVEL="WARNING",
        LOGIN_FAILURE_LIMIT="0",
        **extra,
    )
    manage(env, "migrate", "--noinput")
    manage(env, "collectstatic", "--noinput")
    manage(env, "bootstrap")
    return LiveServer(env, free_port(), data)


@pytest.fixture(scope="session")
def chat_upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream() as up:
        yield up


@pytest.fixture(scope="session")
def chat_server(
    chat_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    server = make_server(chat_upstream, tmp_path_factory.mktemp("chat-server"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chat_browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def new_page(browser: Any, **context_options: Any) -> Any:
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 800}, **context_options})
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    pg.dialogs = []
    pg.errors = []

    def on_dialog(d: Any) -> None:
        pg.dialogs.append(d.message)
        d.dismiss()

    pg.on("dialog", on_dialog)
    pg.on("pageerror", lambda e: pg.errors.append(str(e)))
    return pg


@pytest.fixture
def cpage(chat_browser: Any, chat_upstream: FakeUpstream) -> Iterator[Any]:
    """A fresh browser context (own cookies and storage) with its page."""
    pg = new_page(chat_browser)
    yield pg
    pg.context.close()


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


def wait_idle(page: Any) -> None:
    page.wait_for_function("() => !document.querySelector('#run-controls [data-run-active]')")


def wait_reply_done(page: Any, count: int = 1) -> None:
    page.wait_for_function(
        "(n) => { const a = [...document.querySelectorAll('#messages article.msg-assistant')];"
        " return a.length >= n && a[a.length - 1].dataset.status !== 'in_progress'"
        " && !a[a.length - 1].classList.contains('is-streaming'); }",
        arg=count,
    )
    wait_idle(page)
