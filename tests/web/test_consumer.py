"""The chat websocket, with channels' WebsocketCommunicator against a real embedded executor."""

from __future__ import annotations

import asyncio
import html
import json
import re

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import AnonymousUser
from django.test import Client

from assistants_app.backends import fake
from assistants_app.backends.base import BackendError
from assistants_app.models import Assistant, Run
from assistants_app.services import chat, chat_errors, conversations
from assistants_app.web import notices
from tests.support.sockets import frames_until, socket

# Also run in phase 2 (PostgreSQL + Redis streams + channels_redis): the production path of the socket.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def assistant(transactional_db):
    return Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True)


async def read_until(comm: WebsocketCommunicator, done, within: float = 15) -> str:
    """Frames received until `done(all_text_so_far)` holds, joined."""
    return "".join(await frames_until(comm, done, within))


def streamed_text(frames: str, message_id: str) -> str:
    """What a browser shows in the bubble while it streams: the blocks appended as final after the
    bubble was (re)created, then the latest render of the block still growing; as text."""
    created = frames.rfind(f'is-streaming" id="m-{message_id}"')
    assert created >= 0
    rest = frames[created:]
    mid = re.escape(message_id)
    done = "".join(
        re.findall(
            rf'<div hx-swap-oob="beforeend:#m-{mid}-done">(.*?)</div>(?=<div hx-swap|\n|$)', rest, flags=re.S
        )
    )
    tails = re.findall(
        rf'<div hx-swap-oob="innerHTML:#m-{mid}-tail">(.*?)</div>(?=<div hx-swap|\n|$)', rest, flags=re.S
    )
    shown = done + (tails[-1] if tails else "")
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", shown)).split())


def delta_count(frames: str) -> int:
    """Partial renders of streaming replies (at most one per CHAT_RENDER_INTERVAL_MS)."""
    return len(re.findall(r'innerHTML:#m-msg_\w+-tail">', frames))


def assistant_message_id(frames: str) -> str:
    m = re.search(r'<article class="msg msg-assistant[^"]*" id="m-(msg_\w+)"', frames)
    assert m is not None, frames[-2000:]
    return m.group(1)


def completed(frames: str) -> bool:
    return (
        'data-status="completed"' in frames
        and "msg-assistant" in frames
        and "data-run-active" in frames
        and frames.rstrip().endswith("</div>")
        and _run_idle(frames)
    )


def _run_idle(frames: str) -> bool:
    # The last run-controls fragment has no active run.
    last = frames.rfind('id="run-controls"')
    return last >= 0 and "data-run-active" not in frames[last:]


send = sync_to_async(chat.send, thread_sensitive=False)


# --- authentication and ownership ------------------------------------------------------------------
async def test_unauthenticated_socket_is_closed(transactional_db) -> None:
    comm = socket(AnonymousUser())
    connected, _ = await comm.connect()
    assert connected is False


async def test_session_cookie_authenticates_and_foreign_origin_is_refused(alice) -> None:
    from chatsite.asgi import application

    client = Client()
    await sync_to_async(client.force_login)(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    ok = WebsocketCommunicator(
        application,
        "/ws/chat/",
        headers=[(b"cookie", cookie), (b"host", b"localhost"), (b"origin", b"http://localhost")],
    )
    connected, _ = await ok.connect()
    assert connected is True
    await ok.disconnect()
    evil = WebsocketCommunicator(
        application, "/ws/chat/", headers=[(b"cookie", cookie), (b"origin", b"http://evil.example")]
    )
    connected, _ = await evil.connect()
    assert connected is False
    anon = WebsocketCommunicator(application, "/ws/chat/", headers=[(b"origin", b"http://localhost")])
    connected, _ = await anon.connect()
    assert connected is False


async def test_another_users_run_is_refused(executor, alice, bob, assistant) -> None:
    fake.script(fake.text_turn("alice", " only", delay=0.05))
    _, run = await send(alice, "my secret question")
    comm = socket(bob, f"?tab=b&run={run.id}")  # a forged page run is ignored
    connected, _ = await comm.connect()
    assert connected
    await comm.send_to(text_data=json.dumps({"follow": run.id}))
    frames = await read_until(comm, lambda f: "can&#x27;t be shown" in f or "can't be shown" in f)
    assert "alice" not in frames and "secret" not in frames and "msg-" not in frames
    assert await comm.receive_nothing(timeout=0.5)
    await comm.disconnect()


# --- streaming -------------------------------------------------------------------------------------
async def test_deltas_arrive_as_fragments_and_end_as_markdown(executor, alice, assistant) -> None:
    fake.script(
        fake.text_turn(
            "**Hel", "lo** <img src=x onerror=alert(1)>", " and", " bye", " for", " now", delay=0.15
        )
    )
    comm = socket(alice, "?tab=t1")
    assert (await comm.connect())[0]
    _, run = await send(alice, "hi")
    await comm.send_to(text_data=json.dumps({"follow": run.id, "HEADERS": {}}))
    frames = await read_until(comm, completed)
    msg_id = assistant_message_id(frames)
    assert 'class="msg msg-assistant is-streaming"' in frames
    # Several partial renders, not one final render (a loaded machine may merge a few).
    assert delta_count(frames) >= 3
    # What streamed is the reply so far, never repeated (the last words may only come with the final
    # render: partial renders are at most one per CHAT_RENDER_INTERVAL_MS).
    assert "Hello <img src=x onerror=alert(1)> and bye for now".startswith(streamed_text(frames, msg_id))
    assert streamed_text(frames, msg_id).startswith("Hello")
    assert "<img" not in frames.replace("&lt;img", "")
    final = frames[frames.rfind(f'id="m-{msg_id}"') :]
    assert "<strong>Hello</strong>" in final and "&lt;img src=x onerror=alert(1)&gt;" in final
    assert f'data-run-active="{run.id}"' in frames and "Stop" in frames
    await comm.disconnect()


async def test_reconnect_mid_run_replays_without_loss_or_duplication(executor, alice, assistant) -> None:
    chunks = [f"w{i} " for i in range(30)]
    fake.script(fake.text_turn(*chunks, delay=0.04))
    _, run = await send(alice, "count")
    first = socket(alice, "?tab=t1")
    assert (await first.connect())[0]  # finds the active run by itself
    early = await read_until(first, lambda f: delta_count(f) >= 4)
    assert "w0 " in html.unescape(early)
    await first.disconnect()  # closing the tab does not stop the run
    assert (await sync_to_async(Run.objects.get)(id=run.id)).status in ("in_progress", "queued")

    second = socket(alice, f"?tab=t2&run={run.id}")
    assert (await second.connect())[0]
    frames = await read_until(second, completed)
    msg_id = assistant_message_id(frames)
    shown = streamed_text(frames, msg_id)
    assert shown and "".join(chunks).strip().startswith(shown)  # nothing lost before it, nothing twice
    final = re.findall(rf'id="m-{msg_id}-body">(.*?)</div>', frames, flags=re.S)[-1]
    assert " ".join(html.unescape(re.sub(r"<[^>]+>", " ", final)).split()) == "".join(chunks).strip()
    assert (await sync_to_async(Run.objects.get)(id=run.id)).status == "completed"
    await second.disconnect()


async def test_page_run_that_finished_before_the_socket_connected_is_shown(
    executor, alice, assistant
) -> None:
    fake.script(fake.text_turn("done", " already"))
    _, run = await send(alice, "quick")
    for _ in range(300):
        if (await sync_to_async(Run.objects.get)(id=run.id)).status == "completed":
            break
        await asyncio.sleep(0.02)
    comm = socket(alice, f"?tab=t&run={run.id}")
    assert (await comm.connect())[0]
    frames = await read_until(comm, completed)
    assert "done already" in frames
    await comm.disconnect()


async def test_second_tab_learns_about_a_new_run_and_shows_the_question(executor, alice, assistant) -> None:
    fake.script(fake.text_turn("to", " both", delay=0.05))
    tab_a, tab_b = socket(alice, "?tab=A"), socket(alice, "?tab=B")
    assert (await tab_a.connect())[0] and (await tab_b.connect())[0]
    _, run = await send(alice, "question from A")
    await sync_to_async(notices.notify)(alice.pk, {"type": "chat.run_started", "run_id": run.id, "tab": "A"})
    frames_b = await read_until(tab_b, completed)
    assert frames_b.index("question from A") < frames_b.index("msg-assistant")
    assert "to both" in frames_b
    # Tab A waits for its own follow request (its page shows the question first).
    assert await tab_a.receive_nothing(timeout=0.3)
    await tab_a.send_to(text_data=json.dumps({"follow": run.id}))
    frames_a = await read_until(tab_a, completed)
    assert "to both" in frames_a and "question from A" not in frames_a
    await tab_a.disconnect()
    await tab_b.disconnect()


async def test_failed_run_shows_the_error_with_retry(executor, alice, assistant) -> None:
    fake.script(fake.Turn([BackendError("rate_limit_exceeded", "Slow down, please.")]))
    comm = socket(alice, "?tab=t")
    assert (await comm.connect())[0]
    _, run = await send(alice, "hi")
    await comm.send_to(text_data=json.dumps({"follow": run.id}))
    frames = await read_until(comm, lambda f: "too many requests" in f and _run_idle(f))
    assert "Retry" in frames and 'hx-post="/chat/retry/"' in frames
    assert "Slow down, please." not in frames  # the upstream's words are for staff
    await comm.disconnect()


async def test_stop_cancels_the_streaming_run(executor, alice, assistant) -> None:
    fake.script(fake.Turn(fake.text_turn("partial", " answer").events[:2], hang=True))
    comm = socket(alice, "?tab=t")
    assert (await comm.connect())[0]
    _, run = await send(alice, "go on forever")
    await comm.send_to(text_data=json.dumps({"follow": run.id}))
    await read_until(comm, lambda f: "partial answer" in html.unescape(f))
    await sync_to_async(chat.stop, thread_sensitive=False)(alice, run.id)
    frames = await read_until(comm, lambda f: "Stopped." in f and _run_idle(f))
    assert 'data-status="incomplete"' in frames
    assert (await sync_to_async(Run.objects.get)(id=run.id)).status == "cancelled"
    await comm.disconnect()


async def test_function_tool_activity_is_shown(executor, alice) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    await sync_to_async(Assistant.objects.create)(name="Helper", model="gpt-4o", is_default=True, tools=tools)
    fake.script(fake.tool_turn(("get_weather", '{"city": "Oslo"}')))
    comm = socket(alice, "?tab=t")
    assert (await comm.connect())[0]
    _, run = await send(alice, "weather?")
    await comm.send_to(text_data=json.dumps({"follow": run.id}))
    # Nothing can answer a function without an endpoint in the chat: the reply ends at once
    # (before: it waited in requires_action until the run expired, 10 minutes later).
    frames = await read_until(comm, lambda f: "which the chat can" in f and _run_idle(f))
    assert "Function get_weather" in frames
    step_args = "".join(
        html.unescape(m) for m in re.findall(r'beforeend:#c-step_\w+-0-in">(.*?)</div>', frames)
    )
    assert step_args == '{"city": "Oslo"}'
    assert "An administrator can attach an endpoint to it in the admin" in html.unescape(frames)
    assert chat_errors.NO_TOOL in html.unescape(frames)
    assert "waiting for a result" not in frames[frames.rfind('class="tool-step') :]
    assert (await sync_to_async(Run.objects.get)(id=run.id)).status == "failed"
    await comm.disconnect()


async def test_deleting_a_conversation_tells_the_tabs_showing_it(alice, assistant) -> None:
    question, _ = await send(alice, "in the first conversation")
    shown = question.thread
    other = await sync_to_async(conversations.start_new)(alice)
    assert other.id != shown.id
    tab_a, tab_b = socket(alice, f"?tab=A&thread={shown.id}"), socket(alice, f"?tab=B&thread={other.id}")
    assert (await tab_a.connect())[0] and (await tab_b.connect())[0]
    await sync_to_async(notices.notify)(alice.pk, {"type": "chat.deleted", "thread_id": shown.id})
    frames = await read_until(tab_a, lambda f: "another window" in f)
    assert "deleted" in frames
    assert await tab_b.receive_nothing(timeout=0.3)
    await tab_a.disconnect()
    await tab_b.disconnect()


# --- the conversation's assistant ------------------------------------------------------------------
async def test_a_streaming_reply_carries_the_name_of_the_conversations_assistant(
    executor, alice, assistant
) -> None:
    nova = await sync_to_async(Assistant.objects.create)(name="Nova", model="gpt-4o", chat_visible=True)
    thread = await sync_to_async(conversations.current)(alice)
    await sync_to_async(chat.pick_assistant)(alice, thread, nova.id)
    fake.script(fake.text_turn("Nova", " speaking", delay=0.15))
    comm = socket(alice, f"?tab=t1&thread={thread.id}")
    assert (await comm.connect())[0]
    _, run = await send(alice, "who is this?", thread=thread)
    await comm.send_to(text_data=json.dumps({"follow": run.id}))
    frames = await read_until(comm, completed)
    # The bubble drawn when the reply starts, before its final render from the row.
    streaming = frames[frames.find('class="msg msg-assistant is-streaming"') :]
    who = re.search(r'class="msg-who"[^>]*>([^<]*)<', streaming)
    assert who is not None and who.group(1) == "Nova", streaming[:1500]
    await comm.disconnect()
