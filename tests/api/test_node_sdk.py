"""The official `openai` Node SDK (pinned in tests/node/package.json) against the real server.

Each scenario is a small ES module under tests/node/ that drives the SDK and prints what it saw as
JSON; this module scripts the fake model, runs the scenario with node and asserts on that output.
`make test` installs the SDK (scripts/node-sdk.sh); these tests fail, rather than skip, without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from typing import Any

import pytest

from tests.fakes.upstream import error, hang, text, tool_calls
from tests.support import ROOT
from tests.support.live_server import LiveServer

pytestmark = [pytest.mark.filterwarnings("ignore::DeprecationWarning")]

NODE_DIR = ROOT / "tests" / "node"
# The SDK's own error classes, as `OpenAI.<name>` exports them.
NOT_FOUND, BAD_REQUEST, AUTHENTICATION = "NotFoundError", "BadRequestError", "AuthenticationError"


class ScenarioFailed(AssertionError):
    """A scenario exited non-zero (its message holds the SDK error the scenario printed)."""


def _pinned_version() -> str:
    return str(json.loads((NODE_DIR / "package.json").read_text())["dependencies"]["openai"])


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    if path is None:
        pytest.fail(
            "node is not installed: `make test` installs Debian's nodejs (scripts/system-deps.sh test)"
        )
    installed = NODE_DIR / "node_modules" / "openai" / "package.json"
    if not installed.exists():
        pytest.fail("the Node SDK is not installed: run `bash scripts/node-sdk.sh` (`make test` does)")
    version = json.loads(installed.read_text())["version"]
    if version != _pinned_version():
        pytest.fail(
            f"tests/node/node_modules has openai {version}, not {_pinned_version()}: rerun scripts/node-sdk.sh"
        )
    return path


@pytest.fixture
def scenario(node: str, live: LiveServer) -> Any:
    def run(script: str, name: str) -> dict[str, Any]:
        return run_node(node, live, script, name)

    return run


def node_env(live: LiveServer) -> dict[str, str]:
    """The environment of a scenario: alice's key (bob is the "other user"), and no OPENAI_*."""
    # The SDK reads OPENAI_* (base URL, key, org, logging) from the environment: none may leak in.
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENAI_") and k != "NODE_OPTIONS"}
    env.update(
        ASSISTANTS_BASE_URL=live.base_url,
        ASSISTANTS_API_KEY=live.keys["alice"],
        ASSISTANTS_OTHER_API_KEY=live.keys["bob"],
        NO_PROXY="127.0.0.1,localhost",
    )
    return env


def run_node(node: str, live: LiveServer, script: str, name: str) -> dict[str, Any]:
    """Run tests/node/<script> <name> as alice (bob is the "other user") and return its JSON result."""
    done = subprocess.run(
        [node, str(NODE_DIR / script), name],
        cwd=NODE_DIR,
        env=node_env(live),
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode == 0:
        return dict(json.loads(done.stdout))
    message = (
        f"node {script} {name} exited {done.returncode}:\n{done.stderr}\nserver log:\n{live.log_tail(20)}"
    )
    # The SDK error's message is on stderr: the scenario's own report, or the SDK's log of each
    # failed upload inside uploadAndPoll.
    raise ScenarioFailed(message)


def collapse(events: list[str]) -> list[str]:
    """Event names with runs of one repeated event (deltas) collapsed to one."""
    return [e for i, e in enumerate(events) if i == 0 or events[i - 1] != e]


MESSAGE_RUN = [
    "thread.run.step.created",
    "thread.run.step.in_progress",
    "thread.message.created",
    "thread.message.in_progress",
    "thread.message.delta",
    "thread.message.completed",
    "thread.run.step.completed",
    "thread.run.completed",
]
RUN_START = ["thread.run.created", "thread.run.queued", "thread.run.in_progress"]


def test_node_sdk_is_pinned(node: str) -> None:
    lock = json.loads((NODE_DIR / "package-lock.json").read_text())
    assert lock["packages"]["node_modules/openai"]["version"] == _pinned_version()
    # 6.x: the newest line that runs on this machine's Node 20 (7.x declares node >= 22); like 7.x
    # it still has beta.threads.
    assert _pinned_version().startswith("6.")


# --- runs -----------------------------------------------------------------------------------------------
def test_create_and_poll(live: LiveServer, scenario: Any) -> None:
    live.upstream.script(text("Sunny", " today."))
    out = scenario("runs.mjs", "create_and_poll")
    assert out["status"] == "completed" and out["text"] == "Sunny today."
    assert out["metadata"] == {"via": "poll"} and out["temperature"] == 0.2 and out["total_tokens"] > 0
    assert out["steps"] == [["message_creation", "completed"]]
    assert out["posts"] == 1 and out["polls"] >= 1
    sent = live.upstream.requests[-1]["messages"]
    assert sent[-1] == {"role": "user", "content": "What's the weather?"}


def test_function_calling_with_poll(live: LiveServer, scenario: Any) -> None:
    live.upstream.script(
        tool_calls(("get_weather", '{"city": "Paris"}'), ("get_weather", '{"city": "Rome"}')),
        text("Paris sunny, Rome rainy."),
    )
    out = scenario("runs.mjs", "function_calling_poll")
    assert out["first_status"] == "requires_action" and out["action"] == "submit_tool_outputs"
    assert out["calls"] == [
        ["function", "get_weather", {"city": "Paris"}],
        ["function", "get_weather", {"city": "Rome"}],
    ]
    partial = out["partial"]
    assert partial["class"] == BAD_REQUEST and partial["status"] == 400
    assert partial["param"] == "tool_outputs" and partial["names_missing"] is True
    assert out["status"] == "completed" and out["text"] == "Paris sunny, Rome rainy."
    assert out["steps"] == ["tool_calls", "message_creation"] and out["outputs"] == ["sunny", "rainy"]
    sent = live.upstream.requests[-1]["messages"]
    assert [m["content"] for m in sent if m["role"] == "tool"] == ["sunny", "rainy"]


def test_runs_stream_events_and_handlers(live: LiveServer, scenario: Any) -> None:
    live.upstream.script(text("a", "b", "c"))
    out = scenario("runs.mjs", "runs_stream")
    assert collapse(out["events"]) == RUN_START + MESSAGE_RUN
    assert out["text"] == "abc" and out["stored_text"] == "abc"  # via the textDelta handler
    assert out["status"] == "completed"
    assert out["messages_done"] == [["assistant", "completed", "abc"]]
    assert out["final_messages"] == [["assistant", "abc"]]


def test_raw_stream_has_named_events(live: LiveServer, scenario: Any) -> None:
    live.upstream.script(text("x", "y"))
    out = scenario("runs.mjs", "raw_stream")
    assert collapse(out["events"]) == RUN_START + MESSAGE_RUN
    assert out["text"] == "xy"


def test_submit_tool_outputs_stream(live: LiveServer, scenario: Any) -> None:
    live.upstream.script(tool_calls(("get_weather", '{"city": "Oslo"}')), text("Cold", " in Oslo."))
    out = scenario("runs.mjs", "submit_tool_outputs_stream")
    first = collapse(out["first_events"])
    assert first[:5] == [*RUN_START, "thread.run.step.created", "thread.run.step.in_progress"]
    assert "thread.run.step.delta" in first and first[-1] == "thread.run.requires_action"
    assert out["first_status"] == "requires_action"
    assert out["call"] == ["get_weather", {"city": "Oslo"}]
    assert json.loads(out["streamed_arguments"]) == {"city": "Oslo"}  # accumulated from the deltas
    events = collapse(out["events"])
    # The run resumes, its tool_calls step completes, then a message streams to the end.
    assert events[-len(MESSAGE_RUN) :] == MESSAGE_RUN
    assert sorted(events[: -len(MESSAGE_RUN)]) == [
        "thread.run.in_progress",
        "thread.run.queued",
        "thread.run.step.completed",
    ]
    assert out["same_run"] is True and out["status"] == "completed"
    assert out["text"] == "Cold in Oslo." and out["stored_text"] == "Cold in Oslo."


def test_create_and_run_poll_and_stream(live: LiveServer, scenario: Any) -> None:
    live.upstream.script(text("polled"), text("streamed"))
    out = scenario("runs.mjs", "create_and_run_helpers")
    assert out["polled"] == ["completed", "polled"]
    assert collapse(out["events"]) == ["thread.created", *RUN_START, *MESSAGE_RUN]
    assert out["streamed"] == ["completed", "streamed"]
    assert out["thread_metadata"] == {"src": "node"} and out["distinct_threads"] is True


def test_upstream_failure_ends_the_stream_with_a_failed_run(live: LiveServer, scenario: Any) -> None:
    live.upstream.script(error(400, "bad prompt"))
    out = scenario("runs.mjs", "upstream_failure")
    assert out["events"][: len(RUN_START)] == RUN_START and out["events"][-1] == "thread.run.failed"
    assert out["status"] == "failed"
    assert out["last_error"] is not None and out["last_error"]["message"]


def test_cancel_mid_stream(live: LiveServer, scenario: Any) -> None:
    live.upstream.script(hang(after=("partial ", "answer")))
    out = scenario("runs.mjs", "cancel_mid_stream")
    assert out["events"][-1] == "thread.run.cancelled"
    assert out["cancel_answer"] in ("cancelling", "cancelled")
    assert out["status"] == "cancelled" and out["cancelled_at"] is not None
    assert out["message"] == ["incomplete", "run_cancelled", "partial answer"]
    assert out["cancel_again"]["class"] == BAD_REQUEST and out["cancel_again"]["status"] == 400
    assert live.upstream.wait_closed_early(1, timeout=5)


# --- files and vector stores ----------------------------------------------------------------------------
def check_upload(out: dict[str, Any], filename: str) -> None:
    assert out["object"] == "file" and out["id_prefix"] == "file-" and out["filename"] == filename
    assert out["bytes"] == out["expected_bytes"] and out["purpose"] == "assistants"
    assert out["content_matches"] is True and out["listed"] is True


def test_streamed_upload_from_create_read_stream(scenario: Any) -> None:
    # The SDK sends an fs.ReadStream with `Transfer-Encoding: chunked` and no Content-Length; the
    # server hands Django the whole body with its Content-Length (docs/security.md, request bodies).
    check_upload(scenario("files.mjs", "upload_stream"), "streamed.txt")


def test_upload_from_memory(scenario: Any) -> None:
    """The positive control for the streamed upload: the same bytes with a known length are stored."""
    check_upload(scenario("files.mjs", "upload_buffer"), "buffered.txt")


def check_batch(out: dict[str, Any]) -> None:
    assert out["object"] == "vector_store.files_batch" and out["status"] == "completed"
    assert out["file_counts"] == {"in_progress": 0, "completed": 2, "failed": 0, "cancelled": 0, "total": 2}
    assert out["listed"] == ["completed", "completed"] and out["top_hit"] == "zebra.txt"


def test_file_batches_upload_and_poll_streams(scenario: Any) -> None:
    check_batch(scenario("files.mjs", "batch_upload_and_poll_streams"))


def test_file_batches_upload_and_poll(scenario: Any) -> None:
    check_batch(scenario("files.mjs", "batch_upload_and_poll_buffers"))


def test_vector_store_files_upload_and_poll(scenario: Any) -> None:
    out = scenario("files.mjs", "vector_store_file_upload_and_poll")
    assert out["object"] == "vector_store.file" and out["status"] == "completed"
    assert out["last_error"] is None and out["file_counts"]["completed"] == 1


# --- pagination -----------------------------------------------------------------------------------------
def test_auto_pagination(scenario: Any) -> None:
    out = scenario("pagination.mjs", "auto_pagination")
    ids = out["created"]
    assert len(ids) == 7 and out["desc"] == ids[::-1]
    assert out["desc_requests"] == 4  # pages of 2+2+2+1, then has_more is false
    assert out["asc"] == ids
    assert out["pages"] == [ids[6:3:-1], ids[3:0:-1], ids[:1]]
    manual = out["manual"]
    assert manual["first"] == ids[:2:-1] and manual["first_has_more"] is True
    assert manual["second"] == ids[2::-1] and manual["second_has_next"] is False


# --- error classes --------------------------------------------------------------------------------------
def check_error(err: dict[str, Any], cls: str, status: int) -> None:
    assert err["class"] == cls and err["isAPIError"] is True and err["status"] == status, err
    assert err["type"] == "invalid_request_error" and err["requests"] == 1, err


def test_not_found_for_missing_and_other_owners_objects(scenario: Any) -> None:
    out = scenario("errors.mjs", "not_found")
    assert set(out["others"]) == {
        "assistant",
        "assistant_update",
        "thread",
        "thread_delete",
        "message",
        "messages_list",
        "run_create",
        "file",
        "file_content",
        "vector_store",
    }
    for err in [*out["others"].values(), *out["missing"].values()]:
        check_error(err, NOT_FOUND, 404)
    assert "asst_doesnotexist" in out["missing"]["assistant"]["message"]
    assert out["intact"] == {"assistant_name": "original", "thread": True, "runs": 0}


def test_bad_request_names_the_parameter(scenario: Any) -> None:
    out = scenario("errors.mjs", "bad_request")
    expected = {
        "temperature": "temperature",
        "unknown_parameter": "bogus",
        "metadata": "metadata.k",
        "limit": "limit",
        "order": "order",
        "purpose": "purpose",
        "content_type": "content[0].type",
    }
    assert set(out) == set(expected)
    for case, param in expected.items():
        check_error(out[case], BAD_REQUEST, 400)
        assert out[case]["param"] == param, (case, out[case])
    assert out["unknown_parameter"]["code"] == "unknown_parameter"


def test_bad_keys_are_authentication_errors(scenario: Any) -> None:
    out = scenario("errors.mjs", "authentication")
    for err in [*out["bad"].values(), *out["short"].values()]:
        check_error(err, AUTHENTICATION, 401)
        assert err["code"] == "invalid_api_key"


def test_busy_thread_is_a_bad_request_the_sdk_does_not_retry(live: LiveServer, scenario: Any) -> None:
    live.upstream.script(hang())
    out = scenario("errors.mjs", "busy_thread")
    for err in out["busy"].values():
        check_error(err, BAD_REQUEST, 400)
        assert err["code"] == "thread_busy" and err["shouldRetry"] == "false"
    assert out["ended"] == "cancelled"
