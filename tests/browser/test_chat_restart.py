"""A server restart mid-reply (issue 12.1), and old replies keeping their assistant's name (12.6),
against a server of this module's own (it is restarted, and its default assistant changed)."""

from __future__ import annotations

import time
from typing import Any

from tests.fakes.upstream import FakeUpstream, hang, text
from tests.support.browser import (
    new_page,
    send,
    sign_up,
    wait_reply_done,
)
from tests.support.live_server import LiveServer

# A server of this module's own (tests/conftest.py `live`): it is restarted, and its default
# assistant changed. The lease is short so that the restarted executor ends the cut run soon.
LIVE_RESTARTABLE = True
LIVE_SETTINGS = {"RUN_LEASE_SECONDS": "3"}


def test_the_page_learns_the_real_end_of_a_reply_after_a_restart(
    browser: Any, live: LiveServer, upstream: FakeUpstream
) -> None:
    page = new_page(browser)
    try:
        sign_up(page, live.origin)
        upstream.script(hang(after=["This reply ", "will be cut"]))
        send(page, "a long answer, please")
        page.locator("#messages").get_by_text("will be cut").wait_for()
        time.sleep(1.5)  # past one checkpoint (RUN_CHECKPOINT_SECONDS): the partial text is saved
        live.restart()  # SIGTERM, as a deployment stops it; in phase 2 the run worker too
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
    browser: Any, live: LiveServer, upstream: FakeUpstream
) -> None:
    page = new_page(browser)
    try:
        sign_up(page, live.origin)
        upstream.script(text("from the first"), text("from the second"))
        send(page, "hi")
        wait_reply_done(page)
        first_name = page.locator("article.msg-assistant .msg-who").last.inner_text()
        live.shell(
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
