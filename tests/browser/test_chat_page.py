"""Replies that read well while they stream, and a page that never misleads or loses what the user
typed (issues 11.3, 11 accessibility, 12.2-12.4, 12.6), in headless Chromium."""

from __future__ import annotations

from typing import Any

from tests.fakes.upstream import FakeUpstream, error, hang, text
from tests.support.browser import (
    PASSWORD,
    new_page,
    send,
    sign_up,
    wait_idle,
    wait_reply_done,
)
from tests.support.live_server import LiveServer


def test_markdown_renders_while_streaming_with_highlighted_code(
    browser: Any, server: str, upstream: FakeUpstream
) -> None:
    page = new_page(browser, permissions=["clipboard-read", "clipboard-write"])
    try:
        sign_up(page, server)
        chunks = ["Here is **bold", "** text.\n\n", "```python\n", "def f(x):\n", "    return x < 1\n"]
        chunks += [f"# line {i}\n" for i in range(12)] + ["```\n\n", "Done."]
        upstream.script(text(*chunks, delay=0.12))
        send(page, "show me code")
        # While the reply is still streaming: bold is bold, the open fence is a highlighted code block.
        page.wait_for_function(
            "() => { const a = document.querySelector('article.msg-assistant.is-streaming');"
            " return a && a.querySelector('strong') && a.querySelector('.code-block .code-lang')"
            " && a.querySelector('pre code .k'); }"
        )
        streaming = page.locator("article.msg-assistant.is-streaming")
        assert "**" not in streaming.inner_text() and "```" not in streaming.inner_text()
        assert streaming.locator(".code-lang").inner_text() == "python"
        wait_reply_done(page)
        reply = page.locator("article.msg-assistant").last
        assert reply.locator("strong").inner_text() == "bold"
        reply.get_by_role("button", name="Copy code").click()
        page.wait_for_function("async () => (await navigator.clipboard.readText()).startsWith('def f(x):')")
        assert not page.errors
    finally:
        page.context.close()


def _add_cited_reply_with_image(server: LiveServer, username: str) -> None:
    server.shell(
        f"""
import base64
from django.contrib.auth.models import User
from django.core.files.base import ContentFile
from assistants_app.models import File, Message, Thread
u = User.objects.get(username={username!r})
t = Thread.objects.filter(owner=u, is_chat=True).order_by('-last_activity_at').first()
png = base64.b64decode('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==')
img = File(owner=u, filename='growth-chart.png', purpose='assistants_output', bytes=len(png), origin_thread_id=t.id)
img.data.save(img.id, ContentFile(png), save=False)
img.save()
doc = File.objects.create(owner=u, filename='notes.md', purpose='assistants', bytes=1)
marker = '【0†notes.md】'
value = 'Growth was 4% ' + marker + ' and costs fell ' + marker + '.'
ann = [dict(type='file_citation', text=marker, start_index=value.index(marker), end_index=value.index(marker) + len(marker),
            file_citation=dict(file_id=doc.id, quote='Growth was four percent'))]
Message.objects.create(thread=t, role='assistant', content=[
    dict(type='text', text=dict(value=value, annotations=ann)), dict(type='image_file', image_file=dict(file_id=img.id))])
"""
    )


def test_citation_chips_and_labelled_images(
    page: Any, live: LiveServer, server: str, upstream: FakeUpstream
) -> None:
    username = sign_up(page, server)
    _add_cited_reply_with_image(live, username)
    page.reload()
    reply = page.locator("article.msg-assistant").last
    chips = reply.locator("a.cite-chip")
    assert (
        chips.count() == 2
        and chips.first.inner_text() == "1"
        and chips.first.get_attribute("aria-label") == "Source 1: notes.md"
    )
    assert "【" not in reply.inner_text()
    sources = reply.locator(".msg-sources li")
    assert sources.count() == 1  # the file is listed once
    assert reply.inner_text().count("notes.md") == 1
    chips.first.click()
    assert page.evaluate("() => location.hash").endswith("-src-1")
    image = reply.locator(".msg-image img")
    # Its size is known before it loads (no jump), and it is labelled with the file's name.
    assert image.get_attribute("width") == "1" and image.get_attribute("height") == "1"
    assert image.get_attribute("alt") == "growth-chart.png"
    assert reply.locator("figcaption").inner_text() == "growth-chart.png"


def test_typing_goes_on_during_a_reply_and_focus_stays(
    page: Any, server: str, upstream: FakeUpstream
) -> None:
    sign_up(page, server)
    upstream.script(hang(after=["thinking ", "hard"]), text("second reply"))
    send(page, "first")
    page.locator("#messages").get_by_text("thinking hard").wait_for()
    box = page.get_by_label("Message", exact=True)
    assert box.is_enabled()
    box.type("my next question")
    assert page.evaluate("() => document.activeElement.id") == "composer-text"
    box.press("Enter")  # sending waits for the reply
    page.locator("#composer-feedback").get_by_text("still replying").wait_for()
    assert box.input_value() == "my next question"
    assert page.get_by_role("button", name="Send", exact=True).is_disabled()
    page.get_by_role("button", name="Stop").click()
    wait_idle(page)
    assert page.evaluate("() => document.activeElement.id") in ("composer-text", "")  # never the page
    box.press("Enter")
    page.locator("#messages").get_by_text("second reply").wait_for()


def test_signed_out_elsewhere_the_draft_survives_sign_in_again(page: Any, server: str) -> None:
    username = sign_up(page, server)
    chat_url = page.url
    other = page.context.new_page()  # another tab of the same browser
    other.goto(server + "/")
    other.get_by_role("button", name="Log out").click()
    other.wait_for_url("**/accounts/login/**")
    other.close()
    box = page.get_by_label("Message", exact=True)
    box.fill("a long and precious draft")
    box.press("Enter")
    notice = page.locator("#session-notice")
    notice.get_by_text("You were signed out.").wait_for()
    assert page.locator("#composer-feedback form, #composer-feedback input[type=password]").count() == 0
    assert box.input_value() == "a long and precious draft"
    notice.get_by_role("link", name="Sign in again").click()
    page.wait_for_url("**/accounts/login/?next=*")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_function("() => document.querySelector('#composer-text') !== null")
    assert page.url.rstrip("/").endswith(chat_url.rstrip("/").split("/", 3)[-1]) or page.url.startswith(
        server
    )
    assert page.get_by_label("Message", exact=True).input_value() == "a long and precious draft"


def test_errors_are_in_plain_words_with_retry(page: Any, server: str, upstream: FakeUpstream) -> None:
    sign_up(page, server)
    upstream.script(error(401, "invalid key for http://10.1.2.3:8000/v1"), text("Now it works."))
    send(page, "hello?")
    notice = page.locator("#run-notice")
    notice.get_by_text("isn't set up to answer yet").wait_for()
    shown = page.locator("main").inner_text()
    assert "10.1.2.3" not in shown and "HTTP" not in shown and "upstream" not in shown.lower()
    notice.get_by_role("button", name="Retry").click()
    page.locator("#messages").get_by_text("Now it works.").wait_for()


def test_keyboard_labels_focus_ring_and_one_announcement(
    page: Any, server: str, upstream: FakeUpstream
) -> None:
    sign_up(page, server)
    assert page.locator("#messages").get_attribute("aria-live") is None
    assert page.locator("#messages").get_attribute("role") != "log"  # not a live region: no word-by-word
    page.evaluate(
        "() => { window.__announced = []; new MutationObserver(() => window.__announced.push("
        "document.getElementById('announcer').textContent)).observe(document.getElementById('announcer'),"
        " {childList: true, subtree: true, characterData: true}); }"
    )
    upstream.script(text(*[f"word{i} " for i in range(30)], delay=0.03))
    send(page, "talk")
    wait_reply_done(page)
    page.wait_for_function("() => window.__announced.length > 0")
    announced = page.evaluate("() => window.__announced")
    assert len(announced) == 1 and announced[0].startswith("Assistant replied: word0")
    # Every control of the reply is reachable by keyboard, labelled, and shows a focus ring.
    page.locator("article.msg-assistant").last.get_by_role("button", name="Copy reply").focus()
    seen = []
    for _ in range(4):
        info = page.evaluate(
            "() => { const e = document.activeElement; const s = getComputedStyle(e);"
            " return [e.getAttribute('aria-label') || e.textContent.trim(), s.outlineStyle, s.outlineWidth]; }"
        )
        seen.append(info[0])
        assert info[0] and info[1] != "none" and info[2] != "0px", info
        page.keyboard.press("Tab")
    assert seen[:4] == ["Copy reply", "Regenerate reply", "Good reply", "Bad reply"]
    # Sidebar and topbar controls have names too.
    for name in ("New conversation", "Search conversations"):
        assert page.get_by_label(name).count() + page.get_by_role("button", name=name).count() >= 1


def test_phone_tables_keep_numbers_whole(page: Any, server: str, upstream: FakeUpstream) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_up(page, server)
    rows = "".join(f"| item {i} | 1234567890.12 | 98765432101234 | 55555555555.5 |\n" for i in range(3))
    upstream.script(text("| name | a | b | c |\n|---|--:|--:|--:|\n" + rows))
    send(page, "table please")
    wait_reply_done(page)
    lines = page.evaluate(
        "() => [...document.querySelectorAll('article.msg-assistant td')].map((td) => {"
        " const r = document.createRange(); r.selectNodeContents(td); return r.getClientRects().length; })"
    )
    assert lines and all(n == 1 for n in lines), lines
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390
    assert page.locator("link[rel=icon]").count() == 1
