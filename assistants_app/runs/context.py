"""Prompt building: instructions + as much of the thread as fits, newest messages kept.

Token counts come from a real tokenizer (tiktoken's cl100k_base, shipped offline). Each message's
count is cached on its row, and history is read newest-first in pages through the (thread, id)
index, so a 100,000-message thread costs a few small queries, not a scan.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any

import orjson
import tiktoken
from django.conf import settings
from django.db.models import TextField
from django.db.models.functions import Cast

from assistants_app.models import Message, Run

from . import vision

# Per-message framing tokens in the Chat Completions format.
MESSAGE_OVERHEAD = 4
PAGE = 200

# Context windows of well-known models; MODEL_CONTEXT_TOKENS overrides, unknown models get 8,192.
_WINDOWS = [
    ("gpt-4.1", 1_047_576),
    ("gpt-5", 400_000),
    ("gpt-4o", 128_000),
    ("gpt-4-turbo", 128_000),
    ("o1", 200_000),
    ("o3", 200_000),
    ("o4", 200_000),
    ("gpt-4", 8_192),
    ("gpt-3.5-turbo", 16_385),
]
DEFAULT_WINDOW = 8_192


@functools.cache
def _encoding() -> tiktoken.Encoding:
    return tiktoken.get_encoding(settings.TOKENIZER_ENCODING)


def count_tokens(text: str) -> int:
    if not text:
        return 0
    return len(_encoding().encode(text, disallowed_special=()))


def first_tokens(text: str, n: int) -> str:
    """The start of `text` that its first `n` tokens make (a character split by the cut is dropped)."""
    enc = _encoding()
    tokens = enc.encode(text, disallowed_special=())
    if len(tokens) <= n:
        return text
    return enc.decode_bytes(tokens[: max(0, n)]).decode("utf-8", errors="ignore")


def context_window(model: str) -> int:
    if settings.MODEL_CONTEXT_TOKENS:
        return settings.MODEL_CONTEXT_TOKENS
    name = model.rsplit("/", 1)[-1].lower()
    for prefix, size in _WINDOWS:
        if name.startswith(prefix):
            return size
    return DEFAULT_WINDOW


def message_text(content: list[dict[str, Any]]) -> str:
    parts = []
    for part in content:
        if part.get("type") == "text":
            parts.append(part.get("text", {}).get("value", ""))
        elif part.get("type") == "image_file":
            parts.append(f"[image file {part.get('image_file', {}).get('file_id', '')}]")
        elif part.get("type") == "image_url":
            parts.append(f"[image {part.get('image_url', {}).get('url', '')}]")
    return "\n".join(p for p in parts if p)


def message_tokens(content: list[dict[str, Any]]) -> int:
    # Images: a fixed estimate each (runs/vision.py).
    return count_tokens(message_text(content)) + MESSAGE_OVERHEAD + vision.image_tokens(content)


class PromptTooLarge(Exception):
    def __init__(self, message: str, *, reason: str | None) -> None:
        super().__init__(message)
        # "max_prompt_tokens" when the run's own limit was the cause, None when the model's window was.
        self.reason = reason


@dataclass
class Prompt:
    messages: list[dict[str, Any]]
    prompt_tokens: int
    included: int  # thread messages included
    truncated: bool  # older messages were left out


def completion_reserve(run: Run, window: int) -> int:
    if run.max_completion_tokens:
        return min(run.max_completion_tokens, window // 2)
    return min(4096, window // 4)


def build_prompt(run: Run, tail: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Prompt:
    """`tail` is this run's own tool-call rounds (assistant tool_calls + tool results), kept whole."""
    window = context_window(run.model)
    budget = window - completion_reserve(run, window)
    limited_by_run = False
    if run.max_prompt_tokens and run.max_prompt_tokens < budget:
        budget, limited_by_run = run.max_prompt_tokens, True

    system: list[dict[str, Any]] = []
    if run.instructions:
        system.append({"role": "system", "content": run.instructions})
    fixed = sum(count_tokens(m["content"]) + MESSAGE_OVERHEAD for m in system)
    fixed += sum(_tail_tokens(m) for m in tail)
    if tools:
        fixed += count_tokens(json.dumps(tools))
    if fixed > budget:
        raise PromptTooLarge(
            f"Instructions, tools and tool results need {fixed} tokens; the limit is {budget}.",
            reason="max_prompt_tokens" if limited_by_run else None,
        )

    strategy = run.truncation_strategy or {}
    max_count = strategy.get("last_messages") if strategy.get("type") == "last_messages" else None
    remaining = budget - fixed
    history: list[dict[str, Any]] = []
    truncated = False
    qs = (
        # Superseded messages (a regenerated answer, an edited question) are earlier versions, kept
        # for the reader only: the prompt is the conversation's current path.
        Message.objects.filter(thread_id=run.thread_id, superseded=False)
        .exclude(run_id=run.id, role="assistant")
        .order_by("-id")
        # Tuples, not model instances: a long conversation is read whole for every run, and a
        # model instance per row (init, signals) cost more than the query itself. The content comes
        # as its JSON text, parsed by orjson: JSONField's json.loads per row was the next cost.
        .annotate(content_json=Cast("content", output_field=TextField()))
        .values_list("id", "role", "content_json", "token_count")
    )
    before: str | None = None
    done = False
    images = vision.PromptImages(run.thread_id)
    while not done:
        page = list((qs.filter(id__lt=before) if before else qs)[:PAGE])
        if not page:
            break
        for _id, role, content_json, token_count in page:
            content = orjson.loads(content_json)  # valid JSON: both databases check it on write
            if max_count is not None and len(history) >= max_count:
                truncated, done = True, True
                break
            cost = token_count or message_tokens(content)
            if cost > remaining:
                truncated, done = True, True
                break
            remaining -= cost
            parts = images.parts(role, content)
            history.append({"role": role, "content": message_text(content) if parts is None else parts})
        before = page[-1][0]
        if len(page) < PAGE:
            break
    if not history and not tail:
        raise PromptTooLarge(
            f"The newest message does not fit in the prompt limit of {budget} tokens.",
            reason="max_prompt_tokens" if limited_by_run else None,
        )
    history.reverse()
    return Prompt(
        messages=system + history + tail,
        prompt_tokens=budget - remaining,
        included=len(history),
        truncated=truncated,
    )


def _tail_tokens(message: dict[str, Any]) -> int:
    n = MESSAGE_OVERHEAD + count_tokens(message.get("content") or "")
    for call in message.get("tool_calls") or []:
        fn = call.get("function", {})
        n += count_tokens(fn.get("name", "")) + count_tokens(fn.get("arguments", ""))
    return n
