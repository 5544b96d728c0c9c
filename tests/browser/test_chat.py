"""The chat product in headless Chromium against the live server (`manage.py serve`: daphne + embedded
executor, or in phase 2 a run worker, PostgreSQL and Redis), with the model played by the HTTP fake
upstream (MODEL_BACKEND=openai, OPENAI_BASE_URL=fake). The browser and the `page`, `server` and
`upstream` fixtures are tests/browser/conftest.py's.

Set BROWSER_SCREENSHOTS=<dir> to keep screenshots of the chat page at desktop and phone widths.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path
from typing import Any

from tests.fakes.upstream import FakeUpstream, hang, text
from tests.support.browser import last_reply, send, sign_up, wait_idle


# --------------------------------------------------------------------------------------------------
def test_sign_up_send_stream_and_reload(page: Any, server: str, upstream: FakeUpstream) -> None:
    sign_up(page, server)
    assert "Assistant" in page.locator(".brand").inner_text()
    upstream.script(text("Hel", "lo, ", "this ", "is ", "**stream", "ed**", delay=0.25))
    send(page, "first question")
    page.locator("#messages").get_by_text("first question").wait_for()
    seen: list[str] = []
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        bubbles = page.locator("article.msg-assistant")
        current = bubbles.last.inner_text() if bubbles.count() else ""
        if current and (not seen or seen[-1] != current):
            seen.append(current)
        if bubbles.count() and bubbles.last.get_attribute("data-status") == "completed":
            break
        time.sleep(0.03)
    # The reply grew in several visible steps before its final Markdown rendering.
    assert len(seen) >= 4, seen
    assert last_reply(page).locator("strong").inner_text() == "streamed"
    assert "Hello, this is streamed" in last_reply(page).inner_text()
    wait_idle(page)
    assert page.get_by_role("button", name="Send").is_enabled() and page.get_by_label("Message").is_enabled()

    page.reload()
    page.locator("#messages").get_by_text("first question").wait_for()
    assert "Hello, this is streamed" in last_reply(page).inner_text()
    assert page.locator("article.msg").count() == 2
    assert not page.errors


def test_shift_enter_is_a_newline_and_enter_sends(page: Any, server: str) -> None:
    sign_up(page, server)
    box = page.get_by_label("Message")
    box.type("line one")
    box.press("Shift+Enter")
    box.type("line two")
    assert page.locator("article.msg-user").count() == 0
    box.press("Enter")
    user = page.locator("article.msg-user").last
    user.wait_for()
    assert user.locator(".msg-body").inner_text() == "line one\nline two"
    last_reply(page).wait_for()
    wait_idle(page)


def test_reload_mid_stream_resumes_without_loss_or_repeats(
    page: Any, server: str, upstream: FakeUpstream
) -> None:
    sign_up(page, server)
    words = [f"w{i} " for i in range(25)]
    upstream.script(text(*words, delay=0.12))
    send(page, "count slowly")
    page.wait_for_function(
        "() => (document.querySelector('article.msg-assistant') || {}).textContent?.includes('w2 ')"
    )
    page.reload()  # the run goes on without the page
    page.wait_for_function(
        "() => { const a = [...document.querySelectorAll('article.msg-assistant')];"
        " return a.length && a[a.length - 1].dataset.status === 'completed'; }"
    )
    assert page.locator("article.msg-assistant").count() == 1
    body = last_reply(page).locator(".msg-body").inner_text()
    assert re.sub(r"\s+", " ", body).strip() == "".join(words).strip()


def test_stop_a_run(page: Any, server: str, upstream: FakeUpstream) -> None:
    sign_up(page, server)
    upstream.script(hang(after=["this will ", "never finish"]))
    send(page, "go on forever")
    page.get_by_text("never finish").wait_for()
    # Only sending waits while a reply streams; the box stays editable (issue 12.4).
    assert page.get_by_role("button", name="Send").is_disabled() and page.get_by_label("Message").is_enabled()
    page.get_by_role("button", name="Stop").click()
    page.get_by_text("Stopped.").first.wait_for()
    wait_idle(page)
    assert page.get_by_role("button", name="Send").is_enabled() and page.get_by_label("Message").is_enabled()
    assert last_reply(page).get_attribute("data-status") == "incomplete"
    assert "never finish" in last_reply(page).inner_text()


def test_second_user_cannot_see_the_first_users_thread(
    browser: Any, page: Any, server: str, upstream: FakeUpstream
) -> None:
    sign_up(page, server)
    upstream.script(text("alice's ", "private ", "answer", delay=0.3))
    send(page, "alice's private question")
    run_id = page.locator("#run-controls [data-run-active]").get_attribute("data-run-active")
    assert run_id and run_id.startswith("run_")
    wait_idle(page)

    other = browser.new_context()
    try:
        p2 = other.new_page()
        sign_up(p2, server)
        content = p2.content()
        assert "private" not in content
        # Even a hand-made socket request for the first user's run id gets nothing of it.
        got = p2.evaluate(
            """async (runId) => {
                const ws = new WebSocket(location.origin.replace('http', 'ws') + '/ws/chat/?tab=x');
                const frames = [];
                ws.onmessage = (e) => frames.push(e.data);
                await new Promise((r) => ws.onopen = r);
                ws.send(JSON.stringify({follow: runId}));
                await new Promise((r) => setTimeout(r, 800));
                ws.close();
                return frames.join('');
            }""",
            run_id,
        )
        assert "private" not in got and "can" in got
    finally:
        other.close()


def test_model_html_renders_inert(page: Any, server: str, upstream: FakeUpstream) -> None:
    sign_up(page, server)
    upstream.script(
        text(
            "Look: <img src=x onerror=alert(1)> ",
            "and <script>alert(2)</script> ",
            "[x](javascript:alert(3))",
            delay=0.1,
        )
    )
    send(page, "<img src=y onerror=alert(4)>")
    page.wait_for_function(
        "() => { const a = [...document.querySelectorAll('article.msg-assistant')];"
        " return a.length && a[a.length - 1].dataset.status === 'completed'; }"
    )
    time.sleep(0.3)
    assert page.dialogs == []
    assert page.locator("#messages img").count() == 0
    assert page.locator("#messages script").count() == 0
    assert page.locator("#messages a[href^='javascript']").count() == 0
    text_shown = last_reply(page).inner_text()
    assert "<img src=x onerror=alert(1)>" in text_shown and "<script>alert(2)</script>" in text_shown
    page.reload()
    page.locator("#messages").get_by_text("<img src=y onerror=alert(4)>").wait_for()
    time.sleep(0.3)
    assert page.dialogs == []
    assert page.locator("#messages img, #messages script").count() == 0


def test_screenshots_desktop_and_phone(page: Any, server: str, upstream: FakeUpstream) -> None:
    sign_up(page, server)
    upstream.script(
        text(
            "Here is a table and some code:\n\n| City | Temp |\n|:--|--:|\n| Oslo | 4 °C |\n| Rome | 19 °C |\n\n",
            "```python\nprint('hello')\n```\n\nAnd a [link](https://example.com).",
        )
    )
    send(page, "Show me **Markdown**, please.")
    page.locator("article.msg-assistant table").wait_for()
    wait_idle(page)
    out = os.environ.get("BROWSER_SCREENSHOTS")
    if out:
        Path(out).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=f"{out}/chat-desktop.png")
    # The phone layout: the composer fits the width and nothing overflows sideways.
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    page.locator("article.msg-assistant table").wait_for()
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 390, width
    box = page.locator("#composer").bounding_box()
    assert box is not None and box["width"] <= 390
    if out:
        page.screenshot(path=f"{out}/chat-phone.png")


def test_a_replayed_element_replaces_the_old_one(page: Any, server: str) -> None:
    """After a socket reconnect the run is replayed from its first event: app.js must turn the
    second copy of a bubble into a replacement, so the text is rebuilt once, not appended twice."""
    sign_up(page, server)
    count = page.evaluate(
        """() => {
            const frame = (body) => '<div hx-swap-oob="beforeend:#messages"><article class="msg msg-assistant"'
                + ' id="m-msg_replay"><div class="msg-body" id="m-msg_replay-body">' + body + '</div></article></div>';
            htmx.swap('#ws-follow', frame('first '), {swapStyle: 'none'});
            htmx.swap('#ws-follow', '<div hx-swap-oob="beforeend:#m-msg_replay-body">stream</div>', {swapStyle: 'none'});
            htmx.swap('#ws-follow', frame(''), {swapStyle: 'none'});  // the replay starts over
            htmx.swap('#ws-follow', '<div hx-swap-oob="beforeend:#m-msg_replay-body">first stream</div>', {swapStyle: 'none'});
            return [document.querySelectorAll('#m-msg_replay').length,
                    document.getElementById('m-msg_replay-body').textContent];
        }"""
    )
    assert count == [1, "first stream"]
