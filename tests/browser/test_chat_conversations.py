"""Conversation history and message actions in headless Chromium (issue 11, items 1, 2 and 5)."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.upstream import FakeUpstream, hang, text
from tests.support.browser import new_page, send, sign_up, wait_idle, wait_reply_done
from tests.support.live_server import LiveServer


def test_conversations_list_switch_search_rename_delete(
    page: Any, server: str, upstream: FakeUpstream
) -> None:
    base = server
    sign_up(page, base)
    upstream.script(text("Bergen is ", "rainy."), text("Boil it ", "for seven minutes."))
    send(page, "What is the weather like in Bergen?")
    wait_reply_done(page)
    first_title = page.locator("#conversation-list .conv").first
    assert "What is the weather like in Bergen?" in first_title.inner_text()  # titled at once
    page.get_by_role("button", name="New conversation", exact=True).click()
    page.wait_for_function("() => !document.querySelector('#messages .msg')")
    send(page, "How long do I boil an egg?")
    wait_reply_done(page)
    items = page.locator("#conversation-list .conv-link")
    assert items.count() == 2 and "egg" in items.nth(0).inner_text()  # newest first
    # One click back to the older one: the pane switches without a page load.
    page.evaluate("window.__sameDocument = true")
    items.nth(1).click()
    page.locator("#messages").get_by_text("Bergen is rainy.").wait_for()
    assert page.evaluate("window.__sameDocument") is True
    assert page.url.startswith(f"{base}/c/thread_")
    assert (
        page.locator("#conversation-list .conv[aria-current=page]")
        .inner_text()
        .startswith("What is the weather")
    )
    # The socket followed: a reply in this conversation streams here.
    upstream.script(text("Still ", "rainy."))
    send(page, "And tomorrow?")
    page.locator("#messages").get_by_text("Still rainy.").wait_for()
    wait_idle(page)
    # Search by content.
    page.get_by_label("Search conversations").fill("seven minutes")
    page.wait_for_function("() => document.querySelectorAll('#conversation-list .conv').length === 1")
    assert "egg" in page.locator("#conversation-list .conv-link").inner_text()
    page.get_by_label("Search conversations").fill("")
    page.wait_for_function("() => document.querySelectorAll('#conversation-list .conv').length === 2")
    # Rename inline.
    conv = page.locator("#conversation-list .conv").filter(has_text="egg")
    conv.hover()
    conv.get_by_role("button", name="Rename").click()
    box = conv.get_by_label("New title")
    box.fill("Eggs")
    box.press("Enter")
    page.locator("#conversation-list .conv-link", has_text="Eggs").wait_for()
    # Delete with an inline confirmation, not the browser's confirm().
    conv = page.locator("#conversation-list .conv").filter(has_text="Eggs")
    conv.hover()
    conv.get_by_role("button", name="Delete").first.click()
    conv.get_by_text("Delete this conversation and its files?").wait_for()
    conv.locator(".conv-confirm-delete").click()
    page.wait_for_function("() => document.querySelectorAll('#conversation-list .conv').length === 1")
    assert page.dialogs == []
    page.reload()
    assert page.locator("#conversation-list .conv").count() == 1
    assert "Still rainy." in page.locator("#messages").inner_text()  # lands on the most recent
    assert not page.errors


def test_phone_drawer(page: Any, server: str, upstream: FakeUpstream) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    sign_up(page, server)
    upstream.script(text("ok"))
    send(page, "hello from a phone")
    wait_reply_done(page)
    assert not page.locator("#sidebar").is_visible()
    toggle = page.get_by_role("button", name="Conversations")
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    page.locator("#sidebar").get_by_text("hello from a phone").wait_for(state="visible")
    page.keyboard.press("Escape")
    page.wait_for_function("() => !document.body.classList.contains('drawer-open')")
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390


def test_copy_regenerate_versions_and_feedback(browser: Any, server: str, upstream: FakeUpstream) -> None:
    page = new_page(browser, permissions=["clipboard-read", "clipboard-write"])
    try:
        sign_up(page, server)
        upstream.script(text("First **answer**."), text("Second ", "answer."))
        send(page, "Answer me")
        wait_reply_done(page)
        reply = page.locator("article.msg-assistant").last
        reply.get_by_role("button", name="Copy reply").click()
        page.wait_for_function("async () => (await navigator.clipboard.readText()) === 'First **answer**.'")
        reply.get_by_role("button", name="Regenerate reply").click()
        page.locator("#messages").get_by_text("Second answer.").wait_for()
        wait_reply_done(page)
        assert page.locator("article.msg-assistant").count() == 1  # the old one is a version now
        page.get_by_label("Version 2 of 2").wait_for()
        page.get_by_role("button", name="Previous version").click()
        page.locator("article.msg-assistant strong", has_text="answer").wait_for()
        page.get_by_label("Version 1 of 2").wait_for()
        assert "Second answer." not in page.locator("#messages").inner_text()
        reply = page.locator("article.msg-assistant").last
        reply.get_by_role("button", name="Good reply").click()
        page.wait_for_function(
            "() => document.querySelector('article.msg-assistant .act-up').getAttribute('aria-pressed') === 'true'"
        )
        page.get_by_label("Comment on this reply (optional)").fill("Nice and short")
        page.get_by_role("button", name="Save comment").click()
        page.locator("#messages").get_by_text("Thanks for the feedback.").wait_for()
        page.reload()  # all of it persisted
        page.get_by_label("Version 1 of 2").wait_for()
        assert page.locator("article.msg-assistant .act-up").get_attribute("aria-pressed") == "true"
    finally:
        page.context.close()


def test_edit_and_resend_the_last_message(page: Any, server: str, upstream: FakeUpstream) -> None:
    sign_up(page, server)
    upstream.script(text("About Pariss?"), text("Paris is in France."))
    send(page, "Where is Pariss?")
    wait_reply_done(page)
    mine = page.locator("article.msg-user").last
    mine.get_by_role("button", name="Edit question").click()
    box = page.get_by_label("Edit your message")
    assert box.input_value() == "Where is Pariss?"
    box.fill("Where is Paris?")
    page.get_by_role("button", name="Save and ask").click()
    page.locator("#messages").get_by_text("Paris is in France.").wait_for()
    wait_reply_done(page)
    assert (
        page.locator("article.msg-user").count() == 1
        and "About Pariss?" not in page.locator("#messages").inner_text()
    )
    page.get_by_label("Version 2 of 2").wait_for()
    page.get_by_role("button", name="Previous version").click()
    page.locator("#messages").get_by_text("About Pariss?").wait_for()
    assert "Where is Pariss?" in page.locator("article.msg-user").last.inner_text()


def test_stop_then_continue_and_stopped_is_said_once(page: Any, server: str, upstream: FakeUpstream) -> None:
    sign_up(page, server)
    upstream.script(hang(after=["Once upon ", "a time"]), text(" there was a fox."))
    send(page, "Tell me a story")
    page.locator("#messages").get_by_text("Once upon a time").wait_for()
    page.get_by_role("button", name="Stop").click()
    page.locator("#messages").get_by_text("Stopped.").first.wait_for()
    wait_idle(page)
    assert page.locator("#messages").get_by_text("Stopped.").count() == 1
    page.get_by_role("button", name="Continue").click()
    page.locator("#messages").get_by_text("there was a fox.").wait_for()
    wait_reply_done(page, 2)
    last_prompt = upstream.requests[-1]["messages"]
    assert last_prompt[-1] == {"role": "assistant", "content": "Once upon a time"}


def test_export_markdown_and_json(page: Any, server: str, upstream: FakeUpstream) -> None:
    sign_up(page, server)
    upstream.script(text("Exported **reply**."))
    send(page, "export me")
    wait_reply_done(page)
    with page.expect_download() as md:
        page.get_by_role("link", name="Export this conversation as Markdown").click()
    body = open(md.value.path(), encoding="utf-8").read()
    assert body.startswith("# export me") and "Exported **reply**." in body
    with page.expect_download() as js:
        page.get_by_role("link", name="Export this conversation as JSON").click()
    data = json.loads(open(js.value.path(), encoding="utf-8").read())
    assert [m["role"] for m in data["messages"]] == ["user", "assistant"]


def test_a_10000_message_conversation_opens_at_its_newest_page_and_loads_older_on_scroll(
    page: Any, live: LiveServer, server: str, upstream: FakeUpstream
) -> None:
    username = sign_up(page, server)
    live.shell(
        f"""
from django.contrib.auth.models import User
from assistants_app.models import Message, Thread
u = User.objects.get(username={username!r})
t = Thread.objects.create(owner=u, is_chat=True, title='Very long')
Message.objects.bulk_create([Message(thread=t, role='user' if i % 2 == 0 else 'assistant',
    content=[dict(type='text', text=dict(value=f'note {{i:05d}}', annotations=[]))]) for i in range(10000)], batch_size=2000)
"""
    )
    page.reload()  # lands on "Very long", the most recent; go to the other one and back
    page.locator("#conversation-list .conv-link", has_text="New conversation").click()
    page.wait_for_function("() => !document.querySelector('#messages .msg')")
    page.locator("#conversation-list .conv-link", has_text="Very long").click()
    page.locator("#messages").get_by_text("note 09999").wait_for()
    shown = page.locator("#messages article.msg").count()
    assert shown == 30
    page.evaluate("window.scrollTo(0, 0)")
    page.wait_for_function("() => document.querySelectorAll('#messages article.msg').length >= 60")
    assert page.locator("#messages").get_by_text("note 09940").count() == 1
    assert page.locator("#messages").get_by_text("note 09999").count() == 1  # nothing repeated
