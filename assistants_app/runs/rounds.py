"""One model turn in memory while it streams: its text, its tool calls, the rows it opened, its
usage, and the generated-token limit (`TokenBudget`) that stops it."""

from __future__ import annotations

from dataclasses import dataclass, field

from assistants_app.backends.base import Usage
from assistants_app.models import Message, RunStep

from .context import count_tokens, first_tokens


@dataclass
class Call:
    index: int
    id: str
    name: str = ""
    arguments: str = ""


@dataclass
class Round:
    """One model turn: the text it streamed, the tool calls it made, and their rows."""

    calls: dict[int, Call] = field(default_factory=dict)
    finish: str | None = None
    usage: Usage | None = None
    message: Message | None = None
    message_step: RunStep | None = None
    tool_step: RunStep | None = None
    # The prompt's size as we counted it, for when the upstream reports no usage.
    prompt_tokens: int = 0
    # Whether the upstream sent anything, and whether this round's usage is in the run's already.
    started: bool = False
    accounted: bool = False
    # What the model generated as counted with the tokenizer (`count_generated`), for when the
    # upstream reports no usage: counted once per round, not per delta.
    completion_tokens: int = 0
    _parts: list[str] = field(default_factory=list)
    _text: str = ""
    _text_tokens: tuple[int, int] = (-1, 0)  # (length of the text counted, its tokens)

    @property
    def text(self) -> str:
        if self._parts:
            self._text += "".join(self._parts)
            self._parts.clear()
        return self._text

    def add_text(self, text: str) -> None:
        self._parts.append(text)

    def text_tokens(self) -> int:
        text = self.text
        if self._text_tokens[0] != len(text):
            self._text_tokens = (len(text), count_tokens(text))
        return self._text_tokens[1]

    def count_generated(self) -> int:
        """Tokens the model generated in this round so far (text and tool-call arguments)."""
        self.completion_tokens = self.text_tokens() + sum(
            count_tokens(c.arguments) for c in self.calls.values()
        )
        return self.completion_tokens

    def step_usage(self) -> dict[str, int] | None:
        if self.usage is None and not self.completion_tokens:
            return None
        prompt = self.usage.prompt_tokens if self.usage else self.prompt_tokens
        completion = self.usage.completion_tokens if self.usage else self.completion_tokens
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def message_open(self) -> bool:
        return self.message is not None and self.message.status == Message.Status.IN_PROGRESS


class TokenBudget:
    """Stops a round at `limit` generated tokens without tokenizing every delta.

    A token is at least one UTF-8 byte, so the text not yet counted holds at most its byte length in
    tokens: only when that bound could reach the limit is the uncounted text tokenized (and added to
    what was counted before). Near the limit that happens more often, on ever shorter pieces. A
    delta can carry many tokens (all that arrived in one read), so the one that crosses the limit is
    cut at it."""

    __slots__ = ("_bytes", "_counted", "_pieces", "limit")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._counted = 0
        self._pieces: list[str] = []
        self._bytes = 0

    @property
    def exhausted(self) -> bool:
        return self._counted >= self.limit

    def _record(self, text: str) -> str | None:
        """Add `text` to what is not counted yet; once that could reach the limit, return all of it
        (no longer pending: the caller counts it)."""
        self._pieces.append(text)
        self._bytes += len(text.encode())
        if self._counted + self._bytes < self.limit:
            return None
        pending = "".join(self._pieces)
        self._pieces.clear()
        self._bytes = 0
        return pending

    def add(self, text: str) -> bool:
        """Record generated `text` whole (tool-call arguments are not cut); True once the limit is
        reached."""
        pending = self._record(text)
        if pending is not None:
            self._counted += count_tokens(pending)
        return self.exhausted

    def take(self, text: str) -> str:
        """Record generated `text` and return the part of it within the limit: all of it until the
        limit is reached (then `exhausted`)."""
        if self.exhausted:
            return ""
        pending = self._record(text)
        if pending is None:
            return text
        room = self.limit - self._counted
        tokens = count_tokens(pending)
        if tokens <= room:
            self._counted += tokens
            return text
        self._counted = self.limit
        before = pending[: len(pending) - len(text)]  # earlier deltas, already passed on whole
        kept = first_tokens(pending, room)
        return kept[len(before) :] if kept.startswith(before) else ""
