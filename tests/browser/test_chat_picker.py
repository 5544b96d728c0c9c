"""The assistant picker and the attach control in headless Chromium against the shared live server
(issue 12 items 7 and 10). The module offers two extra assistants in the chat for its own tests
and withdraws them afterwards, so that other modules' pages stay as they were."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.fakes.upstream import FakeUpstream, text
from tests.support.browser import last_reply, send, sign_up, wait_reply_done
from tests.support.live_server import LiveServer


@pytest.fixture(scope="module")
def offered(live: LiveServer) -> Iterator[None]:
    live.shell(
        "from assistants_app.models import Assistant\n"
        "Assistant.objects.create(name='Nova', model='nova-model', instructions='You are Nova, be terse.',"
        " chat_visible=True, tools=[{'type': 'file_search'}])\n"
        "Assistant.objects.create(name='Plain', model='plain-model', chat_visible=True, tools=[])\n"
    )
    yield
    live.shell(
        "from assistants_app.models import Assistant\n"
        "Assistant.objects.filter(name__in=['Nova', 'Plain'], owner=None, is_default=False).delete()\n"
    )


def _pick(page: Any, name: str) -> None:
    page.get_by_label("Assistant", exact=True).select_option(label=name)
    # The box's placeholder follows (app.js), once the picker's answer is on the page.
    page.wait_for_function(
        "(n) => document.querySelector('#assistant-picker')?.dataset.assistantName === n"
        " && document.querySelector('#composer-text').placeholder === `Message ${n}…`",
        arg=name,
    )


def test_a_picked_assistant_answers_the_conversation(
    page: Any, server: str, upstream: FakeUpstream, offered: None
) -> None:
    sign_up(page, server)
    picker = page.get_by_label("Assistant", exact=True)
    default_name = picker.locator("option:checked").inner_text()
    assert default_name not in ("Nova", "Plain")  # the default is preselected
    _pick(page, "Nova")
    assert page.get_by_label("Message", exact=True).get_attribute("placeholder") == "Message Nova…"
    seen = len(upstream.requests)
    upstream.script(text("Nova ", "here."))
    send(page, "who are you?")
    wait_reply_done(page)
    assert "Nova here." in last_reply(page).inner_text()
    assert last_reply(page).locator(".msg-who").inner_text().lower() == "nova"
    request = upstream.requests[seen]
    assert request["model"] == "nova-model"
    assert "You are Nova, be terse." in str(request["messages"][0]["content"])
    # The choice is the conversation's: it is still Nova after a reload.
    page.reload()
    assert page.get_by_label("Assistant", exact=True).locator("option:checked").inner_text() == "Nova"
    assert not page.errors


def test_an_assistant_that_cannot_read_files_turns_attaching_off_before_sending(
    page: Any, server: str, offered: None
) -> None:
    sign_up(page, server)
    assert page.locator("#composer-file").is_enabled()
    assert not page.locator("#attach-note").is_visible()
    _pick(page, "Plain")
    note = page.locator("#attach-note")
    note.wait_for(state="visible")
    assert "Plain can't read files" in note.inner_text() and "attaching is off" in note.inner_text()
    assert page.locator("#composer-file").is_disabled()
    # Picking one that reads files turns it back on.
    _pick(page, "Nova")
    assert page.locator("#composer-file").is_enabled() and not note.is_visible()
    assert not page.errors
