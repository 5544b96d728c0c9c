"""Function tools on the chat page: with an endpoint the reply goes on with the endpoint's answer; without
one the reply ends at once with a message in plain words (it used to wait 10 minutes, then expire),
live on the socket and after a reload."""

from __future__ import annotations

import html
import json
from collections.abc import Iterator

import pytest
from asgiref.sync import sync_to_async
from django.test import Client

from assistants_app.backends import fake
from assistants_app.models import Assistant, FunctionEndpoint, Run
from assistants_app.services import chat, chat_errors
from tests.fakes.endpoint import FakeEndpoint
from tests.support.helpers import wait_run
from tests.support.sockets import socket
from tests.web.test_consumer import _run_idle, read_until

pytestmark = pytest.mark.django_db(transaction=True)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
    },
}
MESSAGE = "The assistant tried to use the tool “get_weather”, which the chat can't run"


@pytest.fixture
def ep(settings) -> Iterator[FakeEndpoint]:
    settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE = "127.0.0.1"
    with FakeEndpoint() as server:
        yield server


@pytest.fixture
def assistant(transactional_db):
    return Assistant.objects.create(name="Helper", model="gpt-4o", is_default=True, tools=[WEATHER])


send = sync_to_async(chat.send, thread_sensitive=False)


async def test_the_chat_shows_the_endpoints_answer_and_the_reply(executor, alice, assistant, ep) -> None:
    await sync_to_async(FunctionEndpoint.objects.create)(
        assistant=assistant, function_name="get_weather", url=ep.url("/echo")
    )
    fake.script(fake.tool_turn(("get_weather", '{"city": "Oslo"}')), fake.text_turn("Cold in Oslo."))
    comm = socket(alice, "?tab=t")
    assert (await comm.connect())[0]
    _, run = await send(alice, "weather in Oslo?")
    await comm.send_to(text_data=json.dumps({"follow": run.id}))
    frames = await read_until(comm, lambda f: "Cold in Oslo." in f and _run_idle(f))
    shown = html.unescape(frames)
    assert '"json": {"city": "Oslo"}' in shown  # the endpoint's answer, in the tool step
    assert "waiting for a result" not in frames[frames.rfind('class="tool-step') :]
    assert "chat can't run" not in shown
    assert (await sync_to_async(Run.objects.get)(id=run.id)).status == "completed"
    await comm.disconnect()


def test_after_a_reload_the_page_says_why_the_reply_ended(executor, alice, assistant) -> None:
    fake.script(fake.tool_turn(("get_weather", '{"city": "Oslo"}')))
    _, run = chat.send(alice, "weather in Oslo?")
    assert wait_run(run.id).status == "failed"
    client = Client()
    client.force_login(alice)
    page = html.unescape(client.get("/").content.decode())
    assert MESSAGE in page
    assert "An administrator can attach an endpoint to it in the admin" in page
    assert "not answered" in page and "waiting for a result" not in page
    # The notice under the reply says it in plain words too, not "Something went wrong ... try again".
    assert chat_errors.NO_TOOL in page and chat_errors.GENERIC not in page
