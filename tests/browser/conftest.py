"""The browser tests' fixtures: ONE headless Chromium for every browser test (started by the first
that needs it, closed after the last), a fresh context and page per test, and the chat site of the
module's live server (tests/conftest.py `live`; helpers in tests/support/browser.py)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream
from tests.support import browser as chromium
from tests.support.live_server import LiveServer


@pytest.fixture(scope="package")
def browser() -> Iterator[Any]:
    # Package scope: the playwright session (and its event loop) ends with the browser tests, before
    # the asyncio tests of later packages run.
    reason = chromium.unavailable()
    if reason is not None:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium.CHROMIUM, args=chromium.CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh browser context (own cookies and storage) with its page; `page.dialogs` and
    `page.errors` record the dialogs it dismissed and its uncaught script errors."""
    pg = chromium.new_page(browser)
    yield pg
    pg.context.close()


@pytest.fixture(scope="module")
def server(live: LiveServer) -> str:
    """The chat site of the module's live server."""
    return live.origin


@pytest.fixture(scope="module")
def upstream(live: LiveServer) -> FakeUpstream:
    """The fake model the module's live server talks to."""
    return live.upstream
