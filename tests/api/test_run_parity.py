"""Runs through the official SDKs against the real server: the sampling parameters a run shows, and
a client that hangs up mid-stream (runs are server-side: the run goes on and its message is whole)."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from typing import Any

import openai
import pytest

from tests.api.test_node_sdk import NODE_DIR, node, node_env, run_node  # noqa: F401  (the `node` fixture)
from tests.fakes.upstream import gated, text
from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]

TERMINAL = ("completed", "failed", "cancelled", "expired", "incomplete")
WORDS = ("one ", "two ", "three ", "four ", "five ", "six")


@pytest.fixture(scope="module")
def client(live: LiveServer) -> openai.OpenAI:
    return live.client()


def wait_terminal(client: openai.OpenAI, thread_id: str, run_id: str, timeout: float = 15) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        run = client.beta.threads.runs.retrieve(run_id, thread_id=thread_id)
        if run.status in TERMINAL:
            return run
        assert time.monotonic() < deadline, f"run still {run.status}"
        time.sleep(0.05)


def answer(client: openai.OpenAI, thread_id: str, run_id: str) -> tuple[str, list[str]]:
    msgs = client.beta.threads.messages.list(thread_id, run_id=run_id).data
    value = "".join(p.text.value for m in msgs for p in m.content if p.type == "text")
    return value, [m.status for m in msgs]


# --- item 4: the temperature and top_p in effect ------------------------------------------------------
def test_unset_sampling_shows_openais_default_and_is_not_sent(
    live: LiveServer, client: openai.OpenAI
) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o")
    assert (assistant.temperature, assistant.top_p) == (1.0, 1.0)
    live.upstream.script(text("ok"))
    run = client.beta.threads.create_and_run_poll(
        assistant_id=assistant.id,
        thread={"messages": [{"role": "user", "content": "hi"}]},
        poll_interval_ms=50,
    )
    assert run.status == "completed"
    assert (run.temperature, run.top_p) == (1.0, 1.0)
    # Unset means "the model's default" upstream: a local server keeps its own (Ollama's is 0.8).
    sent = live.upstream.requests[-1]
    assert "temperature" not in sent and "top_p" not in sent
    # The same on the run list and in the stream's run events.
    listed = client.beta.threads.runs.list(run.thread_id).data[0]
    assert (listed.temperature, listed.top_p) == (1.0, 1.0)


def test_assistant_values_then_run_overrides_are_in_effect(live: LiveServer, client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o", temperature=0.3, top_p=0.8)
    assert (assistant.temperature, assistant.top_p) == (0.3, 0.8)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    live.upstream.script(text("a"), text("b"))
    inherited = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=50
    )
    assert (inherited.temperature, inherited.top_p) == (0.3, 0.8)
    assert (live.upstream.requests[-1]["temperature"], live.upstream.requests[-1]["top_p"]) == (0.3, 0.8)
    overridden = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, temperature=0.0, top_p=0.5, poll_interval_ms=50
    )
    # 0.0 is a value, not "unset".
    assert (overridden.temperature, overridden.top_p) == (0.0, 0.5)
    assert (live.upstream.requests[-1]["temperature"], live.upstream.requests[-1]["top_p"]) == (0.0, 0.5)


def test_streamed_run_events_show_the_effective_values(live: LiveServer, client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o", top_p=0.9)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    live.upstream.script(text("streamed"))
    with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
        stream.until_done()
        final = stream.get_final_run()
    assert final.status == "completed" and (final.temperature, final.top_p) == (1.0, 0.9)


def test_node_sdk_sees_the_effective_values(live: LiveServer, node: str) -> None:  # noqa: F811
    live.upstream.script(text("ok"))
    out = run_node(node, live, "parity.mjs", "sampling")
    assert out == {"temperature": 1.0, "top_p": 1.0, "status": "completed"}


# --- item 7: a client that disconnects mid-stream does not cancel the run ---------------------------
# The upstream holds the answer after its first word until the client has gone (`gated`), so the run
# is certainly still in progress when the client hangs up, whatever the machine's speed.


def test_python_sdk_stream_helper_closed_after_a_few_events(live: LiveServer, client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "count"}])
    gate = threading.Event()
    live.upstream.script(gated(*WORDS, gate=gate))
    seen: list[str] = []
    run_id = ""
    try:
        with client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=assistant.id) as stream:
            for event in stream:
                seen.append(event.event)
                if event.event == "thread.run.created":
                    run_id = event.data.id
                if event.event == "thread.message.delta":
                    break  # leaving the `with` closes the HTTP response: the client hangs up
        assert run_id and seen[-1] == "thread.message.delta"
        assert client.beta.threads.runs.retrieve(run_id, thread_id=thread.id).status == "in_progress"
    finally:
        gate.set()
    run = wait_terminal(client, thread.id, run_id)
    assert run.status == "completed" and run.usage is not None
    assert answer(client, thread.id, run_id) == ("".join(WORDS), ["completed"])


def test_python_sdk_raw_stream_closed_mid_answer(live: LiveServer, client: openai.OpenAI) -> None:
    assistant = client.beta.assistants.create(model="gpt-4o")
    gate = threading.Event()
    live.upstream.script(gated(*WORDS, gate=gate, after=2))
    stream = client.beta.threads.create_and_run(
        assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": "count"}]}, stream=True
    )
    run: Any = None
    try:
        for event in stream:
            if event.event == "thread.run.created":
                run = event.data
            if event.event == "thread.message.delta":
                break  # (the first two words may come as one delta: the engine coalesces them)
        stream.close()
        assert run is not None
        assert client.beta.threads.runs.retrieve(run.id, thread_id=run.thread_id).status == "in_progress"
    finally:
        gate.set()
    done = wait_terminal(client, run.thread_id, run.id)
    assert done.status == "completed"
    assert answer(client, run.thread_id, run.id) == ("".join(WORDS), ["completed"])


def test_node_sdk_stream_aborted_mid_answer(live: LiveServer, node: str) -> None:  # noqa: F811
    gate = threading.Event()
    live.upstream.script(gated(*WORDS, gate=gate))
    scenario = subprocess.Popen(
        [node, str(NODE_DIR / "parity.mjs"), "stream_aborted"],
        cwd=NODE_DIR,
        env=node_env(live),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert scenario.stdout is not None and scenario.stdin is not None
        line = scenario.stdout.readline()  # the scenario aborted its stream and checked the run
        assert line == "aborted\n", scenario.stderr.read() if scenario.stderr else line
        gate.set()
        scenario.stdin.write("go\n")
        scenario.stdin.flush()
        out, err = scenario.communicate(timeout=60)
    finally:
        gate.set()
        if scenario.poll() is None:
            scenario.kill()
            scenario.wait()
    assert scenario.returncode == 0, err
    result = json.loads(out)
    assert result["aborted"] is True and result["seen"][-1] == "thread.message.delta"
    assert result["status_after_abort"] == "in_progress"
    assert result["status"] == "completed"
    assert (result["text"], result["message_statuses"]) == ("".join(WORDS), ["completed"])
