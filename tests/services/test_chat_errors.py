"""The chat's words for a failed reply (services/chat_errors.py) for failures the engine names."""

from __future__ import annotations

from assistants_app.runs.tool_calls import unanswerable_message
from assistants_app.services import chat_errors


def _failed(message: str, code: str = "server_error") -> dict[str, object]:
    return {"status": "failed", "last_error": {"code": code, "message": message}}


def test_a_function_nothing_can_answer_is_not_a_generic_failure() -> None:
    # The engine's own message (runs/tool_calls.py), so a change to its wording shows up here.
    # A function's name may hold another cause's words ("stalled"): the tool is still the cause.
    for names in (["get_weather"], ["get_weather", "book_flight"], ["list_stalled_orders"]):
        assert chat_errors.failure_words(_failed(unanswerable_message(names))) == chat_errors.NO_TOOL


def test_other_server_errors_stay_generic() -> None:
    # Positive control: the rule matches the engine's sentence, not any server_error.
    assert chat_errors.failure_words(_failed("upstream returned 500")) == chat_errors.GENERIC
    assert chat_errors.failure_words(_failed("tool failed", "rate_limit_exceeded")) == chat_errors.BUSY


def test_a_failed_tool_step_shows_only_words_written_for_people() -> None:
    from assistants_app.web.fragments import render_step

    technical = "The upstream model server failed (HTTP 502): upstream connect error at 10.0.0.7:8000"
    step = {
        "id": "step_1",
        "status": "failed",
        "last_error": {"code": "server_error", "message": technical},
        "step_details": {"type": "tool_calls", "tool_calls": []},
    }
    assert chat_errors.step_words(step) == ""
    assert "10.0.0.7" not in render_step(step) and "tool-error" not in render_step(step)
    # The message that names the functions the chat can't run is for people: it stays.
    step["last_error"] = {"code": "server_error", "message": unanswerable_message(["get_weather"])}
    assert "get_weather" in chat_errors.step_words(step)
    assert "tool-error" in render_step(step)
    assert chat_errors.step_words({**step, "status": "completed"}) == ""
