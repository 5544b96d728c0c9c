"""A streamed run does not hold one of the web process's pooled database connections while it streams.

Django hands a request's connection back when the request finishes, and a streaming response finishes
when its stream does: so every open /v1 stream kept a PostgreSQL connection, and more streams than
DB_POOL_SIZE made the next requests wait DB_POOL_TIMEOUT and fail "busy" (340 of 500 streams in the
capacity benchmark). Here the pool has 2 connections and 6 streams stay open at once. On SQLite (phase
1) there is no pool and the test only shows that the streams work; phase 2 runs it on PostgreSQL.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from tests.fakes.upstream import gated
from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]

LIVE_SETTINGS = {"DB_POOL_SIZE": "2", "DB_POOL_TIMEOUT": "3"}
STREAMS = 6


def test_more_open_streams_than_pooled_connections(live: LiveServer) -> None:
    client = live.client(max_retries=0)
    assistant = client.beta.assistants.create(model="gpt-4o")
    gate = threading.Event()
    live.upstream.script(*(gated("first ", "second", gate=gate) for _ in range(STREAMS)))
    started = threading.Barrier(STREAMS + 1, timeout=30)

    def one(i: int) -> str:
        thread = client.beta.threads.create(messages=[{"role": "user", "content": f"question {i}"}])
        text = ""
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            for event in stream:
                if event.event == "thread.message.delta":
                    if not text:
                        started.wait()  # every stream is open and has its first word
                    text += "".join(
                        p.text.value or ""
                        for p in event.data.delta.content or []
                        if p.type == "text" and p.text is not None
                    )
                if event.event in ("thread.run.completed", "thread.run.failed"):
                    assert event.event == "thread.run.completed", event.data.last_error
        return text

    with ThreadPoolExecutor(STREAMS) as pool:
        futures = [pool.submit(one, i) for i in range(STREAMS)]
        try:
            started.wait()
            # While all six stream, the server still answers other requests.
            assert client.beta.assistants.retrieve(assistant.id).id == assistant.id
        except (threading.BrokenBarrierError, openai.APIError) as err:
            for f in futures:
                if f.done() and (cause := f.exception()) is not None:
                    raise cause from err
            raise
        finally:
            gate.set()
        assert [f.result(timeout=30) for f in futures] == ["first second"] * STREAMS
