"""The model backend interface: one request in, a stream of typed events out.

Every backend (OpenAI-compatible HTTP, the scripted fake, a local model) implements `Backend.stream`.
The engine never sees a backend-specific object.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A fragment of one tool call. `index` identifies the call within the response."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str | None = None


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int


FinishReason = Literal["stop", "length", "tool_calls", "content_filter"]


@dataclass(frozen=True, slots=True)
class Finish:
    reason: FinishReason


StreamEvent = TextDelta | ToolCallDelta | Usage | Finish


@dataclass(slots=True)
class ChatRequest:
    model: str
    # OpenAI Chat Completions message dicts: {"role": ..., "content": ..., "tool_calls"?, "tool_call_id"?}
    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] = field(default_factory=list)  # [{"type": "function", "function": {...}}]
    tool_choice: Any = None  # "auto" | "none" | "required" | {"type": "function", "function": {"name": ...}}
    parallel_tool_calls: bool | None = None
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int | None = None
    response_format: dict[str, Any] | None = None


ErrorCode = Literal["server_error", "rate_limit_exceeded", "invalid_prompt"]


class BackendError(Exception):
    """An upstream failure, already classified into the Assistants API's `last_error.code`."""

    def __init__(self, code: ErrorCode, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.message = message
        self.retryable = retryable


class Backend(Protocol):
    def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        """Yield events for one completion. Raise BackendError for upstream failures.

        Closing the iterator (`aclose()`) must close the upstream connection promptly: that is how
        a cancelled run stops paying for tokens.
        """
        ...
