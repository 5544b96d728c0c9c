"""Seed 002's thread and message lifecycle, assistants CRUD, validation and pagination, through the SDK
against the real server."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.support.live_server import LiveServer

pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
]


@pytest.fixture(scope="module")
def client(live: LiveServer) -> openai.OpenAI:
    return live.client()


def test_seed_002_thread_lifecycle(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    dumped = thread.model_dump()
    assert dumped["id"].startswith("thread_") and dumped["object"] == "thread" and dumped["metadata"] == {}

    retrieved = client.beta.threads.retrieve(thread_id=thread.id)
    assert retrieved.id == thread.id and retrieved.created_at == thread.created_at

    # The seed's booleans are not valid metadata: the API answers 400 naming the key.
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.update(
            thread_id=thread.id,
            metadata={"modified_today": True, "user_is_premium": True},  # type: ignore[dict-item]
        )
    assert err.value.status_code == 400
    assert err.value.param == "metadata.modified_today"
    assert err.value.type == "invalid_request_error"
    assert "expected a string" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.update(thread_id=thread.id, metadata={"feedback_rating": 4.5})  # type: ignore[dict-item]
    assert err.value.param == "metadata.feedback_rating"

    updated = client.beta.threads.update(
        thread_id=thread.id, metadata={"modified_today": "true", "conversation_topic": "neural networks"}
    )
    assert updated.metadata == {"modified_today": "true", "conversation_topic": "neural networks"}
    assert client.beta.threads.retrieve(thread.id).metadata == updated.metadata

    # Messages: create, list newest first, retrieve, modify, delete.
    message = client.beta.threads.messages.create(
        thread_id=thread.id, role="user", content="ELI5: What is a neural network?"
    )
    assert message.id.startswith("msg_") and message.role == "user" and message.thread_id == thread.id
    assert message.content[0].type == "text"
    assert message.content[0].text.value == "ELI5: What is a neural network?"
    assert message.content[0].text.annotations == []
    second = client.beta.threads.messages.create(
        thread_id=thread.id, role="user", content="And a transformer?"
    )
    listed = client.beta.threads.messages.list(thread_id=thread.id, limit=5)
    assert [m.id for m in listed.data] == [second.id, message.id]  # index 0 is the newest
    assert client.beta.threads.messages.retrieve(thread_id=thread.id, message_id=message.id).id == message.id
    changed = client.beta.threads.messages.update(
        thread_id=thread.id, message_id=message.id, metadata={"added_note": "Revised content"}
    )
    assert changed.metadata == {"added_note": "Revised content"}
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.messages.update(thread_id=thread.id, message_id=message.id, metadata={"n": 1})  # type: ignore[dict-item]
    assert err.value.param == "metadata.n"
    gone = client.beta.threads.messages.delete(thread_id=thread.id, message_id=message.id)
    assert gone.deleted is True and gone.object == "thread.message.deleted" and gone.id == message.id
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(thread_id=thread.id, message_id=message.id)

    deleted = client.beta.threads.delete(thread_id=thread.id)
    assert deleted.model_dump() == {"id": thread.id, "object": "thread.deleted", "deleted": True}
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve(thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.list(thread_id=thread.id)


def test_thread_with_inline_messages_and_content_parts(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create(
        messages=[
            {"role": "user", "content": "first", "metadata": {"k": "v"}},
            {"role": "assistant", "content": [{"type": "text", "text": "second"}]},
            {
                "role": "user",
                "content": [
                    {"type": "image_url", "image_url": {"url": "https://example.com/x.png", "detail": "low"}}
                ],
            },
        ],
        metadata={"source": "test"},
    )
    msgs = client.beta.threads.messages.list(thread.id, order="asc").data
    assert [m.role for m in msgs] == ["user", "assistant", "user"]
    assert msgs[0].metadata == {"k": "v"}
    assert msgs[1].content[0].text.value == "second"  # type: ignore[union-attr]
    assert msgs[2].content[0].type == "image_url"
    assert msgs[2].content[0].image_url.url == "https://example.com/x.png"


def test_assistants_crud_and_list(client: openai.OpenAI) -> None:
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": {
                    "type": "object",
                    "properties": {"city": {"type": "string"}},
                    "required": ["city"],
                },
            },
        }
    ]
    a = client.beta.assistants.create(
        model="gpt-4o",
        name="Math Tutor",
        description="helps",
        instructions="You are a personal math tutor.",
        tools=tools,  # type: ignore[arg-type]
        metadata={"team": "math"},
        temperature=0.5,
        top_p=0.9,
        response_format={"type": "json_object"},
    )
    assert a.id.startswith("asst_") and a.object == "assistant"
    assert a.tools[0].type == "function" and a.tools[0].function.name == "get_weather"
    assert a.temperature == 0.5 and a.top_p == 0.9 and a.metadata == {"team": "math"}
    assert a.response_format.type == "json_object"  # type: ignore[union-attr]
    b = client.beta.assistants.update(
        a.id, name="Renamed", metadata={"team": "science"}, response_format="auto"
    )
    assert (
        b.name == "Renamed"
        and b.instructions == "You are a personal math tutor."
        and b.response_format == "auto"
    )
    assert client.beta.assistants.retrieve(a.id).name == "Renamed"
    ids = [x.id for x in client.beta.assistants.list(limit=100)]
    assert a.id in ids
    d = client.beta.assistants.delete(a.id)
    assert d.deleted and d.object == "assistant.deleted"
    with pytest.raises(openai.NotFoundError):
        client.beta.assistants.retrieve(a.id)


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"model": None}, "model"),
        ({"model": "gpt-4o", "temperature": 3}, "temperature"),
        ({"model": "gpt-4o", "name": "n" * 257}, "name"),
        ({"model": "gpt-4o", "metadata": {f"k{i}": "v" for i in range(17)}}, "metadata"),
        ({"model": "gpt-4o", "metadata": {"k" * 65: "v"}}, "metadata." + "k" * 65),
        ({"model": "gpt-4o", "metadata": {"k": "v" * 513}}, "metadata.k"),
        ({"model": "gpt-4o", "tools": [{"type": "retrieval"}]}, "tools[0].type"),
        (
            {"model": "gpt-4o", "tools": [{"type": "function", "function": {"name": "bad name"}}]},
            "tools[0].function.name",
        ),
        ({"model": "gpt-4o", "reasoning_effort": "high"}, "reasoning_effort"),
        ({"model": "gpt-4o", "extra_body": {"file_ids": ["file-1"]}}, "file_ids"),
        ({"model": "gpt-4o", "response_format": {"type": "yaml"}}, "response_format.type"),
    ],
)
def test_invalid_assistant_parameters_are_named(
    client: openai.OpenAI, kwargs: dict[str, Any], param: str
) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.assistants.create(**kwargs)
    assert err.value.param == param, err.value.message


def test_unknown_parameters_are_rejected_not_ignored(client: openai.OpenAI) -> None:
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.messages.create(
            thread.id, role="user", content="x", extra_body={"file_ids": ["file-1"]}
        )
    assert err.value.param == "file_ids" and "Unrecognized" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.messages.list(thread.id, extra_query={"sort": "x"})
    assert err.value.param == "sort"
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.messages.create(thread.id, role="system", content="x")  # type: ignore[arg-type]
    assert err.value.param == "role"
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.messages.create(thread.id, role="user", content=[{"type": "video", "video": {}}])  # type: ignore[list-item]
    assert err.value.param == "content[0].type"


def test_pagination_and_auto_pagination(live: LiveServer) -> None:
    client, counter = live.counted_client()
    thread = client.beta.threads.create()
    ids = [client.beta.threads.messages.create(thread.id, role="user", content=f"m{i}").id for i in range(7)]

    first = client.beta.threads.messages.list(thread.id, limit=3)
    assert [m.id for m in first.data] == ids[::-1][:3]
    assert first.has_more is True
    assert first.first_id == ids[6] and first.last_id == ids[4]  # type: ignore[attr-defined]
    second = client.beta.threads.messages.list(thread.id, limit=3, after=first.data[-1].id)
    assert [m.id for m in second.data] == ids[::-1][3:6]
    last = client.beta.threads.messages.list(thread.id, limit=3, after=second.data[-1].id)
    assert [m.id for m in last.data] == [ids[0]] and last.has_more is False

    # `before` returns the page just before the cursor, in the list's order.
    back = client.beta.threads.messages.list(thread.id, limit=2, before=ids[2])
    assert [m.id for m in back.data] == [ids[4], ids[3]] and back.has_more is True
    asc = client.beta.threads.messages.list(thread.id, order="asc", limit=4)
    assert [m.id for m in asc.data] == ids[:4]
    asc_before = client.beta.threads.messages.list(thread.id, order="asc", limit=2, before=ids[5])
    assert [m.id for m in asc_before.data] == ids[3:5]

    counter.reset()
    everything = list(client.beta.threads.messages.list(thread.id, limit=2))
    assert [m.id for m in everything] == ids[::-1]
    assert counter.count("GET", "/messages") == 4  # 2+2+2+1, then has_more is false
    everything_asc = list(client.beta.threads.messages.list(thread.id, limit=3, order="asc"))
    assert [m.id for m in everything_asc] == ids

    for bad in ({"limit": 0}, {"limit": 101}, {"order": "sideways"}):
        with pytest.raises(openai.BadRequestError) as err:
            client.beta.threads.messages.list(thread.id, **bad)
        assert err.value.param == next(iter(bad))


async def test_async_client_lifecycle(live: LiveServer) -> None:
    client = live.async_client()
    thread = await client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    page = await client.beta.threads.messages.list(thread.id)
    assert page.data[0].content[0].text.value == "hello"  # type: ignore[union-attr]
    with pytest.raises(openai.BadRequestError):
        await client.beta.threads.update(thread.id, metadata={"flag": False})  # type: ignore[dict-item]
    seen = [m.id async for m in client.beta.threads.messages.list(thread.id, limit=1)]
    assert len(seen) == 1
    assert (await client.beta.threads.delete(thread.id)).deleted
    await client.close()
