"""The per-user daily token budget (issue 12.11), as a chat user meets it: the reply that used it up
is shown, the next send is refused in plain words with when it renews, and the typed text stays."""

from __future__ import annotations

from typing import Any

from tests.fakes.upstream import FakeUpstream, text
from tests.support.browser import new_page, send, sign_up, wait_reply_done
from tests.support.live_server import LiveServer

# Any first reply (its prompt alone carries the instructions) uses more than 5 tokens.
LIVE_SETTINGS = {"USER_DAILY_TOKEN_BUDGET": "5"}


def test_over_the_daily_budget_the_page_says_so_and_keeps_the_text(
    browser: Any, live: LiveServer, upstream: FakeUpstream
) -> None:
    page = new_page(browser)
    try:
        sign_up(page, live.origin)
        upstream.script(text("A first answer."))
        send(page, "first question")
        wait_reply_done(page)
        assert "A first answer." in page.locator("article.msg-assistant").last.inner_text()
        send(page, "a second question")
        feedback = page.locator("#composer-feedback")
        feedback.get_by_text("today's limit of 5 tokens").wait_for()
        assert "UTC" in feedback.inner_text()
        assert page.get_by_label("Message", exact=True).input_value() == "a second question"
        assert page.locator("article.msg-assistant").count() == 1  # nothing was started
    finally:
        page.context.close()
