"""`rewrite_query` on vector store search: through the SDK against the real server (whose default
backend is the fake upstream), and the service's bounds in-process with the scripted backend."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from assistants_app.backends import fake
from assistants_app.backends.base import Finish, TextDelta
from assistants_app.errors import InvalidRequest
from assistants_app.services import query_rewrite
from tests.fakes.upstream import error, text
from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]

NOTES = (
    "Field notes, chapter three. The plains zebra migration crosses the Mara river every August, "
    "following the rains north from the Serengeti.\n"
    "Unrelated paragraph about accounting ledgers, invoices and quarterly tax filings.\n"
)
QUESTION = "Hey, when do those striped horses go over the water in Kenya?"


@pytest.fixture(scope="module")
def client(live: LiveServer) -> openai.OpenAI:
    return live.client()


@pytest.fixture(scope="module")
def store(client: openai.OpenAI) -> Any:
    store = client.vector_stores.create(name="rewrite")
    done = client.vector_stores.files.upload_and_poll(
        vector_store_id=store.id, file=("notes.txt", NOTES.encode()), poll_interval_ms=50
    )
    assert done.status == "completed", done.last_error
    return store


def search_query(client: openai.OpenAI, store: Any, **kw: Any) -> tuple[list[str], Any]:
    raw = client.vector_stores.with_raw_response.search(store.id, **kw)
    body = raw.http_response.json()
    return body["search_query"], raw.parse()


def test_the_model_rewrites_the_query_and_the_search_uses_it(
    live: LiveServer, client: openai.OpenAI, store: Any
) -> None:
    live.upstream.script(text('"zebra migration', ' Mara river"\n'))
    searched, results = search_query(client, store, query=QUESTION, rewrite_query=True)
    assert searched == ["zebra migration Mara river"]
    assert results.data and "Mara river" in results.data[0].content[0].text
    sent = live.upstream.requests[-1]
    assert sent["model"] == "gpt-4o-mini"  # VECTOR_STORE_REWRITE_MODEL, else DEFAULT_MODEL
    assert sent["messages"][0]["role"] == "system" and sent["messages"][1] == {
        "role": "user",
        "content": QUESTION,
    }
    assert sent["temperature"] == 0.0 and sent["max_tokens"] == query_rewrite.REWRITE_MAX_TOKENS
    # Positive control: without rewrite_query the question is searched as given, and no model is asked.
    asked = len(live.upstream.requests)
    searched, _ = search_query(client, store, query=QUESTION, rewrite_query=False)
    assert searched == [QUESTION] and len(live.upstream.requests) == asked


def test_each_query_of_a_list_is_rewritten(live: LiveServer, client: openai.OpenAI, store: Any) -> None:
    # Unscripted, the fake upstream answers "Echo: <the query>": each answer belongs to its query
    # whichever order the concurrent requests arrive in.
    searched, _ = search_query(client, store, query=["zebra", "ledgers"], rewrite_query=True)
    assert searched == ["Echo: zebra", "Echo: ledgers"]


def test_a_failing_model_leaves_the_query_as_given(
    live: LiveServer, client: openai.OpenAI, store: Any
) -> None:
    live.upstream.script(error(500, "model is down"))
    searched, results = search_query(client, store, query="zebra migration", rewrite_query=True)
    assert searched == ["zebra migration"] and results.data
    assert "rewrite_query failed" in live.log_tail(100)


# --- in-process: the bounds --------------------------------------------------------------------------
def test_a_slow_model_is_not_waited_for_beyond_the_timeout(settings: Any) -> None:
    settings.VECTOR_STORE_REWRITE_TIMEOUT = 0.2
    fake.script(fake.Turn([TextDelta("never")], hang=True))
    assert query_rewrite.rewrite_queries(["zebra"]) == ["zebra"]
    # Positive control: the same call with an answering model rewrites.
    fake.script(fake.Turn([TextDelta("Search query: striped horses"), Finish("stop")]))
    assert query_rewrite.rewrite_queries(["zebra"]) == ["striped horses"]


def test_without_a_model_rewrite_query_is_refused_clearly(settings: Any) -> None:
    settings.MODEL_BACKEND = "openai"
    settings.OPENAI_BASE_URL = ""
    settings.OPENAI_API_KEY = ""
    with pytest.raises(InvalidRequest) as err:
        query_rewrite.rewrite_queries(["zebra"])
    assert err.value.param == "rewrite_query" and "OPENAI_BASE_URL" in err.value.message


@pytest.mark.parametrize(
    ("answer", "query"),
    [
        ("zebra migration", "zebra migration"),
        ("  \n“zebra migration”\nBecause the user asks about zebras.", "zebra migration"),
        ("Query: `zebra`", "zebra"),
        ('""', None),
        ("", None),
    ],
)
def test_clean_keeps_only_the_query(answer: str, query: str | None) -> None:
    assert query_rewrite.clean(answer) == query
