"""Prompt building and truncation."""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from assistants_app.models import Assistant, Message, Run
from assistants_app.runs import state
from assistants_app.runs.context import PromptTooLarge, build_prompt, count_tokens, message_tokens
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread, post_message


@pytest.fixture
def thread(alice):
    return create_thread(alice)


def _fill(thread, n: int, words: int = 50) -> None:
    rows = []
    for i in range(n):
        content = [
            {"type": "text", "text": {"value": f"message {i} " + "lorem ipsum " * words, "annotations": []}}
        ]
        rows.append(
            Message(
                thread=thread,
                role="user" if i % 2 == 0 else "assistant",
                content=content,
                token_count=message_tokens(content),
            )
        )
    Message.objects.bulk_create(rows, batch_size=2000)


def _run(thread, alice, **fields) -> Run:
    a = Assistant.objects.create(owner=alice, model=fields.pop("model", "gpt-4o"))
    return state.create_run(
        thread=thread, assistant=a, assistant_ref=a.id, model=a.model, instructions="Be nice.", **fields
    )


def test_tokenizer_is_real() -> None:
    assert count_tokens("hello world") == 2
    assert count_tokens("") == 0


def test_thread_larger_than_window_keeps_newest_within_limit(thread, alice, settings):
    settings.MODEL_CONTEXT_TOKENS = 4000
    _fill(thread, 300)
    run = _run(thread, alice)
    prompt = build_prompt(run, [], [])
    total = sum(count_tokens(m["content"]) + 4 for m in prompt.messages)
    assert total <= 4000 - 1000  # window minus the completion reserve (window // 4)
    assert prompt.truncated and 0 < prompt.included < 300
    assert prompt.messages[0] == {"role": "system", "content": "Be nice."}
    assert prompt.messages[-1]["content"].startswith("message 299 ")
    kept = [int(m["content"].split()[1]) for m in prompt.messages[1:]]
    assert kept == list(range(300 - len(kept), 300))


def test_last_messages_strategy(thread, alice):
    _fill(thread, 30, words=2)
    run = _run(thread, alice, truncation_strategy={"type": "last_messages", "last_messages": 5})
    prompt = build_prompt(run, [], [])
    assert [m["content"].split()[1] for m in prompt.messages[1:]] == ["25", "26", "27", "28", "29"]


def test_max_prompt_tokens_limits_history(thread, alice):
    _fill(thread, 30, words=50)
    run = _run(thread, alice, max_prompt_tokens=500)
    prompt = build_prompt(run, [], [])
    assert prompt.prompt_tokens <= 500
    assert prompt.included == 4  # each message is ~108 tokens


def test_max_prompt_tokens_too_small_for_newest_message(thread, alice):
    _fill(thread, 3, words=200)
    run = _run(thread, alice, max_prompt_tokens=100)
    with pytest.raises(PromptTooLarge) as err:
        build_prompt(run, [], [])
    assert err.value.reason == "max_prompt_tokens"


def test_max_prompt_tokens_run_ends_incomplete(executor, alice):
    from tests.support.helpers import wait_run

    thread = create_thread(alice)
    post_message(thread, role="user", content="word " * 400)
    a = Assistant.objects.create(owner=alice, model="gpt-4o")
    run = start_run(thread, a, max_prompt_tokens=100)
    run = wait_run(run.id)
    assert run.status == "incomplete"
    assert run.incomplete_details == {"reason": "max_prompt_tokens"}


def test_building_prompt_on_a_large_thread_reads_only_pages(thread, alice, settings):
    settings.MODEL_CONTEXT_TOKENS = 8000
    _fill(thread, 20_000, words=5)
    run = _run(thread, alice)
    with CaptureQueriesContext(connection) as ctx:
        prompt = build_prompt(run, [], [])
    assert prompt.truncated and prompt.messages[-1]["content"].startswith("message 19999 ")
    assert len(ctx.captured_queries) <= 3
    assert all("LIMIT" in q["sql"] for q in ctx.captured_queries)


def test_the_history_reads_every_stored_content_as_it_was_saved(thread, alice) -> None:
    # The history is parsed from its JSON text (orjson), not by JSONField: non-ASCII text and every
    # part comes back as stored.
    text = [{"type": "text", "text": {"value": "née ✓ 漢字 \u2028", "annotations": []}}]
    both = [*text, {"type": "text", "text": {"value": "second part", "annotations": []}}]
    Message.objects.create(thread=thread, role="user", content=text)
    Message.objects.create(thread=thread, role="assistant", content=both)
    prompt = build_prompt(_run(thread, alice), [], [])
    assert [m["content"] for m in prompt.messages[1:]] == [
        "née ✓ 漢字 \u2028",
        "née ✓ 漢字 \u2028\nsecond part",
    ]
