"""A server restart mid-reply (issue 12.1), and old replies keeping their assistant's name (12.6),
against a server of this module's own (it is restarted, and its default assistant changed)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chat_live import (
    LiveServer,
    browser_available,
    make_server,
    new_page,
    send,
    sign_up,
    wait_reply_done,
)
from tests.fakes.upstream import FakeUpstream, hang, text

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(browser_available() is not None, reason=str(browser_available())),
]


@pytest.fixture(scope="module")
def own_server(chat_upstream: FakeUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    server = make_server(chat_upstream, tmp_path_factory.mktemp("restart-server"), RUN_LEASE_SECONDS="3")
    server.start()
    yield server
    server.stop()


def test_the_page_learns_the_real_end_of_a_reply_after_a_restart(
    chat_browser: Any, own_server: LiveServer, chat_upstream: FakeUpstream
) -> None:
    page = new_page(chat_browser)
    try:
        sign_up(page, own_server.base)
        chat_upstream.script(hang(after=["This reply ", "will be cut"]))
        send(page, "a long answer, please")
        page.locator("#messages").get_by_text("will be cut").wait_for()
        time.sleep(1.5)  # past one checkpoint (RUN_CHECKPOINT_SECONDS): the partial text is saved
        own_server.stop()
        own_server.start()
        back = time.monotonic()
        # No reload: the socket reconnects, names the run, and hears how it really ended.
        page.wait_for_function(
            "() => !document.querySelector('#run-controls [data-run-active]')", timeout=20_000
        )
        took = time.monotonic() - back
        notice = page.locator("#run-notice")
        notice.get_by_text("interrupted because the server restarted").wait_for()
        assert notice.get_by_role("button", name="Retry").is_visible()
        assert page.get_by_role("button", name="Send", exact=True).is_enabled()
        reply = page.locator("article.msg-assistant").last
        assert "will be cut" in reply.inner_text() and not reply.evaluate(
            "(e) => e.classList.contains('is-streaming')"
        )
        print(f"page showed the end state {took:.1f} s after the server was back")
    finally:
        page.context.close()


def test_old_replies_keep_the_name_of_the_assistant_that_wrote_them(
    chat_browser: Any, own_server: LiveServer, chat_upstream: FakeUpstream
) -> None:
    page = new_page(chat_browser)
    try:
        sign_up(page, own_server.base)
        chat_upstream.script(text("from the first"), text("from the second"))
        send(page, "hi")
        wait_reply_done(page)
        first_name = page.locator("article.msg-assistant .msg-who").last.inner_text()
        own_server.shell(
            "from assistants_app.models import Assistant\n"
            "old = Assistant.objects.get(is_default=True)\n"
            "Assistant.objects.filter(id=old.id).update(is_default=False)\n"
            "Assistant.objects.create(name='Nova', model=old.model, is_default=True)\n"
        )
        page.reload()
        send(page, "hello again")
        wait_reply_done(page, 2)
        page.reload()
        names = page.locator("article.msg-assistant .msg-who").all_text_contents()
        assert [n.lower() for n in names] == [first_name.lower(), "nova"], names
        assert first_name.lower() != "nova"
    finally:
        page.context.close()
