"""Python sessions through the official `openai` SDK against the real server: two runs on one thread
share the interpreter (x = 41 in the first, x + 1 prints 42 in the second), in the run step's logs
and in the streamed tool-call deltas; deleting the thread ends its session."""

from __future__ import annotations

import atexit
import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from openai import AssistantEventHandler

from assistants_app.tools.code_interpreter import cgroups, sandbox
from tests.fakes.upstream import text, tool_calls
from tests.support.live_server import LiveServer

_problem = sandbox._probe_namespaces() or sandbox.sessions_problem()
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.skipif(_problem is not None, reason=f"no Python sessions here: {_problem}"),
    pytest.mark.usefixtures("sandbox_venv"),
]

# The server runs bwrap as an unprivileged uid when it is root: its workdirs must be reachable by
# it (the server's own DATA_DIR is a 0700 temporary directory), and it uses the tests' sandbox venv.
_ROOT = Path(tempfile.mkdtemp(prefix="api-ci-sessions-"))
_ROOT.chmod(0o755)
atexit.register(shutil.rmtree, _ROOT, ignore_errors=True)
LIVE_SETTINGS = {
    "CODE_INTERPRETER_WORKDIR_ROOT": str(_ROOT),
    "CODE_INTERPRETER_VENV": str(sandbox.venv_path()),
}


def code_run(live: LiveServer, client: openai.OpenAI, thread_id: str, assistant_id: str, code: str) -> Any:
    live.upstream.script(tool_calls(("code_interpreter", json.dumps({"code": code}))), text("Done."))
    client.beta.threads.messages.create(thread_id=thread_id, role="user", content="run it")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread_id, assistant_id=assistant_id, poll_interval_ms=50
    )
    assert run.status == "completed", (run.last_error, live.log_tail())
    return run


def code_call(client: openai.OpenAI, thread_id: str, run_id: str) -> Any:
    steps = client.beta.threads.runs.steps.list(run_id=run_id, thread_id=thread_id)
    step = next(s for s in steps.data if s.type == "tool_calls")
    call = step.step_details.tool_calls[0]  # type: ignore[union-attr]
    assert call.type == "code_interpreter"
    return call


def test_the_second_run_sees_the_first_runs_variables(live: LiveServer) -> None:
    client = live.client()
    asst = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    first = code_run(live, client, thread.id, asst.id, "x = 41")
    assert code_call(client, thread.id, first.id).code_interpreter.outputs == []  # nothing printed
    second = code_run(live, client, thread.id, asst.id, "print(x + 1)")
    call = code_call(client, thread.id, second.id)
    assert call.code_interpreter.input == "print(x + 1)"
    assert [(o.type, o.logs) for o in call.code_interpreter.outputs] == [("logs", "42\n")]
    # The model read it too (the tool message of the second run's next request).
    assert live.upstream.requests[-1]["messages"][-1]["content"] == "42\n"

    # Streamed: the SDK's handler sees the logs of a third execution in the same session.
    live.upstream.script(tool_calls(("code_interpreter", json.dumps({"code": "x * 2"}))), text("82."))
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="double it")
    logs: list[str] = []

    class Handler(AssistantEventHandler):
        def on_tool_call_delta(self, delta: Any, snapshot: Any) -> None:
            if delta.type == "code_interpreter" and delta.code_interpreter.outputs:
                logs.extend(o.logs for o in delta.code_interpreter.outputs if o.type == "logs")

    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=asst.id, event_handler=Handler()
    ) as s:
        s.until_done()
    assert logs == ["82\n"]

    # Another thread never sees this one's variables.
    other = client.beta.threads.create()
    run = code_run(live, client, other.id, asst.id, "print('x' in globals())")
    assert code_call(client, other.id, run.id).code_interpreter.outputs[0].logs == "False\n"


def _session_cgroups(pid: int) -> int:
    """How many session cgroups the server process `pid` has (their names hold its pid)."""
    support = cgroups.detect()
    parent = next(iter(support.parents.values()))
    return sum(1 for p in parent.glob(f"exec-{pid}-*"))


def test_deleting_the_thread_ends_its_session(live: LiveServer) -> None:
    if live.workers:
        pytest.skip("the session lives in a run_worker, which ends it at its next existence check")
    if cgroups.detect().version is None:
        pytest.skip("no cgroups to observe sessions with")
    client = live.client()
    asst = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create()
    code_run(live, client, thread.id, asst.id, "x = 1")
    before = _session_cgroups(live.process.pid)
    assert before >= 1
    assert client.beta.threads.delete(thread.id).deleted
    deadline = time.monotonic() + 30
    while _session_cgroups(live.process.pid) != before - 1:
        assert time.monotonic() < deadline, "the session outlived its thread"
        time.sleep(0.05)
