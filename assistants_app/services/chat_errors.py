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

_BY_CODE = {"rate_limit_exceeded": BUSY, "invalid_prompt": TOO_LONG}
# Causes recognised from the technical message (the codes are coarse): first match wins.
_BY_CAUSE = (
    ("lease expired", INTERRUPTED),
    ("stopped before it finished", INTERRUPTED),
    ("no model backend is configured", NOT_SET_UP),
    ("rejected the api key", NOT_SET_UP),
    ("out of quota", NOT_SET_UP),
    ("could not connect", UNREACHABLE),
    ("stalled", UNREACHABLE),
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
