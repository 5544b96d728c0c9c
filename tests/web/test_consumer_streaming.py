"""The chat socket renders replies as Markdown while they stream: at a bounded rate, safely, and
ending with exactly the history view's rendering; a reconnecting page learns how its runs ended."""

from __future__ import annotations

import asyncio
import json
import re
import time
from html.parser import HTMLParser
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from assistants_app.backends import fake
from assistants_app.backends.base import TextDelta
from assistants_app.models import Assistant, Run
from assistants_app.runs import events
from assistants_app.runs.recovery import WORKER_LOST
from assistants_app.services import chat, chat_decorations, conversations
from assistants_app.web import rendering
from tests.support import ROOT
from tests.support.sockets import frames_until, socket

pytestmark = [pytest.mark.django_db(transaction=True)]


@pytest.fixture
def assistant(transactional_db):
    return Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True)


def finished(text: str) -> bool:
    last = text.rfind('id="run-controls"')
    return 'data-status="completed"' in text and last >= 0 and "data-run-active" not in text[last:]


send = sync_to_async(chat.send, thread_sensitive=False)
PARTIAL = re.compile(r'<div hx-swap-oob="(?:innerHTML:#m-msg_\w+-tail|beforeend:#m-msg_\w+-done)">')


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.found.append((tag, dict(attrs)))


def elements(html: str) -> list[tuple[str, dict[str, str | None]]]:
    p = _Elements()
    p.feed(html)
    return p.found


# The page's own icons (the thumbs of a finished reply), written by the template, not the model.
TEMPLATE_ICONS = set(
    re.findall(r"<svg\b.*?</svg>", (ROOT / "templates/chat/fragments.html").read_text(), re.S)
)


def model_markup(frame: str) -> str:
    for icon in TEMPLATE_ICONS:
        frame = frame.replace(icon, "")
    return frame


async def test_partial_renders_are_bounded_and_the_last_equals_the_history_view(
    executor, alice, assistant, settings
) -> None:
    settings.CHAT_RENDER_INTERVAL_MS = 100
    words = ["# Plan\n\n", "Some **bold", "** text.\n\n", "```python\n", "x = 1\n"] + [
        f"y{i} = {i}\n" for i in range(60)
    ]
    fake.script(fake.text_turn(*words, "```\n\nDone.", delay=0.01))
    comm = socket(alice, "?tab=t")
    assert (await comm.connect())[0]
    started = time.monotonic()
    _, run = await send(alice, "plan it")
    await comm.send_to(text_data=json.dumps({"follow": run.id}))
    frames = await frames_until(comm, finished)
    elapsed = time.monotonic() - started
    text = "".join(frames)
    tails = re.findall(r"innerHTML:#m-msg_\w+-tail", text)
    # At most one partial render per 100 ms window (plus the first, at once), however many deltas.
    assert 2 <= len(tails) <= elapsed / 0.1 + 2, (len(tails), elapsed)
    assert len(tails) < len(words)
    # Partial renders were Markdown already: a heading, bold, a highlighted code block so far.
    partial = text[: text.rfind('data-status="completed"')]
    assert "<h1>Plan</h1>" in partial and "<strong>bold</strong>" in partial
    assert '<code class="language-python">' in partial
    # The final render is the one the history view makes.
    final = text[text.rfind("<article") : text.find("</article>", text.rfind("<article")) + 10]
    client = Client()
    await sync_to_async(client.force_login)(alice)
    page = (await sync_to_async(client.get)("/")).content.decode()
    start = page.rfind("<article")
    assert final == page[start : page.find("</article>", start) + 10]
    # Announced to screen readers once, when finished, not word by word.
    assert text.count("innerHTML:#announcer") == 1 and "Helper replied: Plan" in text
    await comm.disconnect()


@pytest.mark.parametrize(
    "hostile",
    [
        ["<img src=x onerror=alert(1)> ", "and <script>alert(2)</script>"],
        ["[click](javascript:alert(3)) ", "![pic](javascript:alert(4))"],
        ["```html\n<script>alert(5)</script>\n", "<img src=y onerror=alert(6)>"],  # an unclosed fence
        ['<a href="https://x" onclick="alert(7)">x</a> ', "【1†<b onmouseover=alert(8)>f</b>】"],
    ],
)
async def test_hostile_markdown_stays_inert_in_every_partial_render(
    executor, alice, assistant, hostile
) -> None:
    fake.script(fake.text_turn(*hostile, " tail", delay=0.15))
    comm = socket(alice, "?tab=t")
    assert (await comm.connect())[0]
    _, run = await send(alice, "be nasty")
    await comm.send_to(text_data=json.dumps({"follow": run.id}))
    frames = await frames_until(comm, finished)
    partials = [f for f in frames if PARTIAL.search(f)]
    assert partials
    assert TEMPLATE_ICONS
    for frame in frames:
        for tag, attrs in elements(model_markup(frame)):
            assert tag not in ("img", "script", "iframe", "svg", "style"), frame
            assert not any(name.startswith("on") for name in attrs), frame
            href = (attrs.get("href") or "").lower()
            assert not href.startswith(("javascript:", "data:", "vbscript:")), frame
    # Announced once, as plain text escaped once (not "&amp;lt;img": read aloud as "ampersand").
    announced = [f for f in frames if "innerHTML:#announcer" in f]
    assert len(announced) == 1 and "&amp;" not in announced[0], announced
    await comm.disconnect()


async def test_an_unclosed_code_fence_renders_as_a_code_block_so_far(executor, alice, assistant) -> None:
    fake.script(fake.Turn([TextDelta("Look:\n\n```js\nlet a = 1;\n")], hang=True))
    comm = socket(alice, "?tab=t")
    assert (await comm.connect())[0]
    _, run = await send(alice, "code")
    await comm.send_to(text_data=json.dumps({"follow": run.id}))
    frames = await frames_until(comm, lambda f: "language-js" in f)
    text = "".join(frames)
    assert '<span class="code-lang">js</span>' in text and "```" not in text
    await sync_to_async(chat.stop, thread_sensitive=False)(alice, run.id)
    await comm.disconnect()


async def test_a_reconnecting_page_learns_that_its_run_ended_while_it_was_away(
    alice, assistant, event_log
) -> None:
    """A server restart: the run the page showed was ended by recovery, and its event log (in the
    old process's memory) is gone. The page names the run when its socket reconnects."""
    _, run = await send(alice, "a long question")

    def end_as_recovery_does() -> None:
        Run.objects.filter(id=run.id).update(
            status="failed", last_error={"code": "server_error", "message": WORKER_LOST}
        )

    await sync_to_async(end_as_recovery_does)()
    events.reset_event_log()  # a new process: nothing in the log
    comm = socket(alice, "?tab=t")  # the reconnect: the page URL named no run, none is active
    assert (await comm.connect())[0]
    assert await comm.receive_nothing(timeout=0.3)
    await comm.send_to(text_data=json.dumps({"resume": [run.id]}))
    frames = "".join(await frames_until(comm, lambda f: "server restarted" in f, within=10))
    last = frames.rfind('id="run-controls"')
    assert last >= 0 and "data-run-active" not in frames[last:]
    assert 'hx-post="/chat/retry/"' in frames and "lease expired" not in frames
    await comm.disconnect()


async def test_resume_names_only_the_users_own_runs(alice, bob, assistant) -> None:
    _, run = await send(alice, "alice's secret")
    comm = socket(bob, "?tab=b")
    assert (await comm.connect())[0]
    await comm.send_to(text_data=json.dumps({"resume": [run.id, 5, None]}))
    frames = "".join(await frames_until(comm, lambda f: "can&#x27;t be shown" in f or "can't be shown" in f))
    assert "secret" not in frames and "msg-" not in frames
    await comm.disconnect()


async def test_another_tab_drops_the_version_a_regenerate_replaced(alice, assistant) -> None:
    from assistants_app.web import notices

    thread = await sync_to_async(conversations.current)(alice)
    tab = socket(alice, f"?tab=B&thread={thread.id}")
    assert (await tab.connect())[0]
    _, run = await send(alice, "q", thread=thread)
    await sync_to_async(notices.notify)(
        alice.pk,
        {
            "type": "chat.run_started",
            "run_id": run.id,
            "thread_id": thread.id,
            "tab": "A",
            "removed": ["m-msg_old1", "s-step_old2", 'x"><script>'],
        },
    )
    frames = "".join(await frames_until(tab, lambda f: "delete:#s-step_old2" in f))
    assert '<div hx-swap-oob="delete:#m-msg_old1"></div>' in frames and "<script>" not in frames
    await sync_to_async(chat.stop, thread_sensitive=False)(alice, run.id)
    await tab.disconnect()


async def test_a_finished_reply_reads_its_decorations_once(executor, alice, assistant, monkeypatch) -> None:
    """Rendering the final reply and naming its assistant for the announcement share one read of the
    reply's decorations (five queries), not one each, and one render of its Markdown."""
    real = chat_decorations.decorations
    seen: list[list[str]] = []

    def counting(user: Any, msgs: list[Any]) -> Any:
        seen.append([m.id for m in msgs])
        return real(user, msgs)

    monkeypatch.setattr(chat_decorations, "decorations", counting)
    rendered: list[str] = []
    md = rendering._md()  # every whole render (markdown_to_html) goes through its render()
    real_render = md.render

    def counting_render(text: str, env: Any = None) -> str:
        rendered.append(text)
        return str(real_render(text, env))

    monkeypatch.setattr(md, "render", counting_render)
    fake.script(fake.text_turn("Short ", "answer."))
    comm = socket(alice, "?tab=t")
    assert (await comm.connect())[0]
    _, run = await send(alice, "hi")
    await comm.send_to(text_data=json.dumps({"follow": run.id}))
    text = "".join(await frames_until(comm, finished))
    assert "Helper replied: Short answer." in text
    reply = await sync_to_async(lambda: Run.objects.get(id=run.id).messages.get(role="assistant").id)()
    assert sum(reply in ids for ids in seen) == 1, seen
    assert rendered.count("Short answer.") == 1, rendered
    await comm.disconnect()


async def test_short_partial_renders_stay_on_the_loop_and_code_goes_to_a_thread(
    executor, alice, assistant, monkeypatch, settings
) -> None:
    """A trip to a thread per socket and interval was the largest single cost of a streaming chat:
    a short render is made on the event loop; one with a code block (a highlight can take
    milliseconds) still goes to a thread."""
    settings.CHAT_RENDER_INTERVAL_MS = 50
    threaded: list[str] = []
    real = asyncio.to_thread

    async def counting(fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        threaded.append(getattr(fn, "__name__", ""))
        return await real(fn, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    comm = socket(alice, "?tab=t")
    assert (await comm.connect())[0]
    for chunks in (
        ["A short ", "plain ", "reply ", "in ", "parts."],
        ["```python\n", "x = 1\n", "y = 2\n", "```"],
    ):
        fake.script(fake.text_turn(*chunks, delay=0.08))
        _, run = await send(alice, "hi")
        await comm.send_to(text_data=json.dumps({"follow": run.id}))
        frames = await frames_until(comm, finished)
        assert len(PARTIAL.findall("".join(frames))) >= 2
        if chunks[0] == "A short ":
            assert "partials" not in threaded, threaded
    assert "partials" in threaded
    await comm.disconnect()
