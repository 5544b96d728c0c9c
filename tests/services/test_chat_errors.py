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
