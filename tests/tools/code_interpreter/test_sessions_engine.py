"""Python sessions through the engine: runs of one thread share the interpreter, the model is told
when the state was lost, and deleting the thread ends its session (sandbox for real)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from assistants_app.backends import fake
from assistants_app.models import Assistant, RunStep, Thread
from assistants_app.runs.executor import ThreadedExecutor
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread, post_message
from assistants_app.tools.code_interpreter import sandbox, sessions
from assistants_app.tools.code_interpreter.session import Session
from tests.support.helpers import wait_run

_problem = sandbox._probe_namespaces() or sandbox.sessions_problem()
pytestmark = [
    pytest.mark.skipif(_problem is not None, reason=f"no Python sessions here: {_problem}"),
    pytest.mark.usefixtures("ci_settings"),
]


@pytest.fixture
def assistant(alice):
    return Assistant.objects.create(owner=alice, model="gpt-4o", tools=[{"type": "code_interpreter"}])


def run_code(thread: Thread, assistant: Assistant, code: str) -> dict[str, Any]:
    """One run whose model calls the code interpreter once; the call as stored in the run step."""
    fake.script(fake.tool_turn(("code_interpreter", json.dumps({"code": code}))), fake.text_turn("Done."))
    post_message(thread, role="user", content="run it")
    run = wait_run(start_run(thread, assistant).id, timeout=90)
    assert run.status == "completed", run.last_error
    step = RunStep.objects.get(run_id=run.id, type="tool_calls")
    call: dict[str, Any] = step.step_details["tool_calls"][0]
    return call


def logs_of(call: dict[str, Any]) -> str:
    return str(call["code_interpreter"]["outputs"][0]["logs"])


def session_of(thread_id: str) -> Session | None:
    for pool in list(sessions._pools):
        session = pool._sessions.get(thread_id)
        if session is not None:
            return session
    return None


def until(condition: Any, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_two_runs_on_one_thread_share_the_python_state(executor, alice, assistant):
    thread = create_thread(alice)
    first = run_code(thread, assistant, "x = 41\nprint('x is set')")
    assert logs_of(first) == "x is set\n"
    second = run_code(thread, assistant, "print(x + 1)")
    assert logs_of(second) == "42\n"
    tools = fake.requests()[0].tools
    description = next(
        t["function"]["description"] for t in tools if t["function"]["name"] == "code_interpreter"
    )
    assert "share one Python session" in description and "1 h without a call" in description
    # Another thread of the same user has its own interpreter.
    other = run_code(create_thread(alice), assistant, "print('x' in globals())")
    assert logs_of(other) == "False\n"


def test_deleting_the_thread_ends_its_session(executor, alice, assistant):
    thread = create_thread(alice)
    run_code(thread, assistant, "x = 1")
    session = session_of(thread.id)
    assert session is not None and session.proc is not None
    pid = session.proc.pid
    Thread.objects.get(id=thread.id).delete()  # the API's, the admin's or a user's deletion
    until(
        lambda: (
            session_of(thread.id) is None and session.proc is not None and session.proc.returncode is not None
        )
    )
    assert session.ended == "the thread was deleted" and pid == session.proc.pid


def test_the_model_is_told_when_the_state_was_lost(executor, settings, alice, assistant):
    settings.CODE_INTERPRETER_SESSION_IDLE_SECONDS = 1
    thread = create_thread(alice)
    run_code(thread, assistant, "x = 41")
    until(lambda: session_of(thread.id) is None)  # idle for a second: the reaper ended it
    again = run_code(thread, assistant, "print(x)")
    logs = logs_of(again)
    assert logs.startswith("[The Python state was lost (the session was idle for more than 1 s). ")
    assert "NameError: name 'x' is not defined" in logs
    tool_message = fake.requests()[-1].messages[-1]
    assert tool_message["role"] == "tool" and tool_message["content"].startswith("[The Python state was lost")


def test_a_runaway_execution_says_the_state_is_lost(executor, settings, alice, assistant):
    settings.CODE_INTERPRETER_WALL_SECONDS = 2
    thread = create_thread(alice)
    run_code(thread, assistant, "x = 41")
    stuck = logs_of(run_code(thread, assistant, "while True:\n    pass"))
    assert "Execution timed out after 2 s" in stuck
    assert stuck.rstrip().endswith(
        "The Python state was lost: the next execution starts in a fresh interpreter (files in /mnt/data are kept)."
    )
    fresh = logs_of(run_code(thread, assistant, "print(globals().get('x'))"))
    assert fresh.startswith(
        "[The Python state was lost (the previous execution was stopped: execution timed out after 2 s)."
    )
    assert fresh.endswith("None\n")


@pytest.mark.usefixtures("transactional_db", "event_log")
def test_a_restarted_executor_says_the_earlier_state_is_gone(alice, assistant):
    thread = create_thread(alice)
    ex = ThreadedExecutor(concurrency=2).start()
    try:
        run_code(thread, assistant, "x = 41")
        session = session_of(thread.id)
        assert session is not None
    finally:
        ex.stop()
    assert session.proc is not None and session.proc.returncode is not None  # shutdown ended it
    ex = ThreadedExecutor(concurrency=2).start()
    try:
        logs = logs_of(run_code(thread, assistant, "print(globals().get('x'))"))
    finally:
        ex.stop()
    assert logs.startswith(
        "[The Python state was lost (the session of the earlier executions is gone: the server "
        "restarted, or another worker ran them)."
    )
    # A new thread's first execution has nothing to lose: no note.
    ex = ThreadedExecutor(concurrency=2).start()
    try:
        assert logs_of(run_code(create_thread(alice), assistant, "print(1)")) == "1\n"
    finally:
        ex.stop()


def test_with_sessions_off_each_execution_starts_fresh_and_the_model_knows(
    executor, settings, alice, assistant
):
    settings.CODE_INTERPRETER_SESSION_IDLE_SECONDS = 0
    thread = create_thread(alice)
    run_code(thread, assistant, "x = 41")
    assert session_of(thread.id) is None
    second = logs_of(run_code(thread, assistant, "print(globals().get('x'))"))
    assert second == "None\n"  # and no note: nothing was promised
    tools = fake.requests()[0].tools
    description = next(
        t["function"]["description"] for t in tools if t["function"]["name"] == "code_interpreter"
    )
    assert description.endswith("Variables do not persist between calls, but files in /mnt/data do.")
