"""Errors raised by services; the API renders them as OpenAI error objects, the web UI as text."""

from __future__ import annotations

from datetime import datetime
from typing import TypedDict


class ErrorObject(TypedDict):
    """The OpenAI error object: `{"error": ErrorObject}` in an API response or an SSE error event."""

    message: str
    type: str
    param: str | None
    code: str | None


class ServiceError(Exception):
    status = 400
    type = "invalid_request_error"

    def __init__(self, message: str, *, param: str | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code

    def as_dict(self) -> ErrorObject:
        return {"message": self.message, "type": self.type, "param": self.param, "code": self.code}


class InvalidRequest(ServiceError):
    pass


class ServerBusy(ServiceError):
    """The database could not be had in time: SQLite's write lock, or no connection free in the
    PostgreSQL pool within DB_POOL_TIMEOUT. Nothing of the request was saved (its transaction, if
    any, rolled back), so the same request later is safe."""

    status = 503
    type = "server_error"

    def __init__(self) -> None:
        super().__init__("The server is busy right now. Please try again in a moment.", code="server_busy")


class NotFound(ServiceError):
    status = 404

    def __init__(self, kind: str, object_id: str, *, param: str | None = None) -> None:
        super().__init__(f"No {kind} found with id '{object_id}'.", param=param, code=None)


class ThreadBusy(ServiceError):
    """A thread with an active run accepts no new message or run. Retrying at once cannot help."""

    retryable = False

    def __init__(self, thread_id: str, run_id: str | None) -> None:
        detail = f" while run {run_id} is active" if run_id else " while a run is active"
        super().__init__(
            f"Can't add messages or start a run on thread {thread_id}{detail}.",
            code="thread_busy",
        )
        self.run_id = run_id


class TooManyActiveRuns(ServiceError):
    """The owner already has RUN_MAX_ACTIVE_PER_USER runs queued or active.

    A 429, but not one worth an automatic retry: the SDK's retries come within seconds, while the
    owner's own runs decide when a slot frees up. So the API sends `x-should-retry: false`.
    """

    status = 429
    type = "requests"
    retryable = False

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"You already have {limit} runs queued or in progress, the most allowed at once. "
            "Wait for one of them to finish (or cancel one), then start this run again.",
            code="too_many_active_runs",
        )
        self.limit = limit


class TokenBudgetExhausted(ServiceError):
    """The owner's runs today used USER_DAILY_TOKEN_BUDGET tokens or more (OpenAI's own 429 for an
    exhausted quota is type and code `insufficient_quota`, which SDK users already handle)."""

    status = 429
    type = "insufficient_quota"
    retryable = False

    def __init__(self, budget: int, used: int, resets_at: datetime) -> None:
        super().__init__(
            f"You have used {used} of your {budget} tokens for today. The budget renews at "
            f"{resets_at:%H:%M} UTC; an administrator can raise it.",
            code="insufficient_quota",
        )
        self.budget = budget
        self.used = used
        self.resets_at = resets_at
