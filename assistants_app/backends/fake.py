"""A scripted in-process backend for tests (MODEL_BACKEND=fake).

Tests queue turns with `script(...)`; each model call consumes one. With nothing queued, it echoes
the last user message word by word, which keeps a demo usable without a model.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field

from .base import BackendError, ChatRequest, Finish, StreamEvent, TextDelta, ToolCallDelta, Usage


@dataclass
class Turn:
    events: Sequence[StreamEvent | BackendError] = ()
    delay: float = 0.0  # seconds between events
    hang: bool = False  # after the events, wait until cancelled


@dataclass
class _Script:
    turns: deque[Turn | Callable[[ChatRequest], Turn]] = field(default_factory=deque)
    requests: list[ChatRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


_script = _Script()


def script(*turns: Turn | Callable[[ChatRequest], Turn]) -> None:
    with _script.lock:
        _script.turns.extend(turns)


def reset() -> None:
    with _script.lock:
        _script.turns.clear()
        _script.requests.clear()


def requests() -> list[ChatRequest]:
    with _script.lock:
        return list(_script.requests)


def text_turn(*chunks: str, delay: float = 0.0, usage: tuple[int, int] | None = None) -> Turn:
    events: list[StreamEvent | BackendError] = [TextDelta(c) for c in chunks]
    if usage:
        events.append(Usage(*usage))
    events.append(Finish("stop"))
    return Turn(events, delay=delay)


def tool_turn(*calls: tuple[str, str], delay: float = 0.0) -> Turn:
    events: list[StreamEvent | BackendError] = []
    for i, (name, args) in enumerate(calls):
        events.append(ToolCallDelta(i, id=f"call_fake{i}_{name}", name=name, arguments=""))
        half = len(args) // 2
        events.append(ToolCallDelta(i, arguments=args[:half]))
        events.append(ToolCallDelta(i, arguments=args[half:]))
    events.append(Finish("tool_calls"))
    return Turn(events, delay=delay)


def _echo(request: ChatRequest) -> Turn:
    last = next((m for m in reversed(request.messages) if m.get("role") == "user"), None)
    content = last.get("content") if last else ""
    if isinstance(content, list):
        content = " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    words = f"Echo: {content}".split(" ")
    return text_turn(*[w if i == 0 else " " + w for i, w in enumerate(words)])


class FakeBackend:
    async def stream(self, request: ChatRequest) -> AsyncIterator[StreamEvent]:
        with _script.lock:
            _script.requests.append(request)
            item = _script.turns.popleft() if _script.turns else _echo
        turn = item(request) if callable(item) else item
        for ev in turn.events:
            if turn.delay:
                await asyncio.sleep(turn.delay)
            if isinstance(ev, BackendError):
                raise ev
            yield ev
        if turn.hang:
            await asyncio.Event().wait()
