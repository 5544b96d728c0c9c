"""What end users are told when a reply fails: one short sentence per kind of failure.

The run's `last_error` (code and technical message: upstream URLs, HTTP statuses, lease details) is
for staff: it stays on the run row, shown in the admin, and the engine logs it (runs/engine.py). The chat page shows
only these words, chosen from the code and a few well-known causes.
"""

from __future__ import annotations

from typing import Any

GENERIC = "Something went wrong while the assistant was replying. Please try again."
INTERRUPTED = "The reply was interrupted because the server restarted. Please try again."
NOT_SET_UP = "The assistant isn't set up to answer yet. Please let an administrator know."
BUSY = "The assistant is getting too many requests right now. Please try again in a minute."
TOO_LONG = (
    "The assistant couldn't take this conversation as it is (it may be too long). "
    "Try a shorter message, or start a new conversation."
)
EXPIRED = "The reply took too long and was stopped. Please try again."
UNREACHABLE = "The assistant can't be reached right now. Please try again in a moment."
NO_IMAGES = (
    "The assistant can't look at images. Start a new conversation without them, or ask an "
    "administrator for an assistant whose model takes images."
)
# The tool step above the notice names the function (runs/tool_calls.unanswerable_message); trying
# again only helps once an administrator has attached an endpoint to it.
NO_TOOL = "The assistant needed a tool that this chat can't run. Please let an administrator know."

_BY_CODE = {"rate_limit_exceeded": BUSY, "invalid_prompt": TOO_LONG}
# Causes recognised from the technical message (the codes are coarse): first match wins.
_BY_CAUSE = (
    # First: this message quotes function names, which could contain any of the words below.
    ("which the chat can't run", NO_TOOL),
    ("lease expired", INTERRUPTED),
    ("stopped before it finished", INTERRUPTED),
    ("no model backend is configured", NOT_SET_UP),
    ("rejected the api key", NOT_SET_UP),
    ("out of quota", NOT_SET_UP),
    ("could not connect", UNREACHABLE),
    ("stalled", UNREACHABLE),
    # runs/vision.py (an assistant set not to take images), backends/refusals.py (a model refusing them)
    ("is set not to take images", NO_IMAGES),
    ("does not accept images", NO_IMAGES),
)


def failure_words(run: dict[str, Any]) -> str:
    """The sentence for a failed or expired run (an API run object, as events and pages have)."""
    if run.get("status") == "expired":
        return EXPIRED
    error = run.get("last_error") or {}
    technical = str(error.get("message") or "").lower()
    for cause, words in _BY_CAUSE:
        if cause in technical:
            return words
    return _BY_CODE.get(str(error.get("code") or ""), GENERIC)


def step_words(step: dict[str, Any]) -> str:
    """What a failed tool step says on the chat page: the message that names the tools the chat
    can't run (written for people), or nothing; the notice under the reply says the rest in plain
    words, and the technical message stays for staff."""
    if step.get("status") != "failed":
        return ""
    if failure_words(step) != NO_TOOL:
        return ""
    return str((step.get("last_error") or {}).get("message") or "")


class ChatError(Exception):
    """A problem the user can fix or should know about; `message` is shown as is."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
