"""Warm-up before the server accepts connections.

The first message after a start used to wait 2.4-4 s: the executor warmed the tool modules (numpy,
pypdf), the tokenizer's ranks, and the first request compiled templates, Markdown and Pygments —
all after daphne had started accepting work. `manage.py serve` calls `warm()` first, then listens.
It lives beside the ASGI application (the composition root): it touches every layer.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger(__name__)

_warm = False


def warm() -> float:
    """Load what the first run and the first chat page need; returns the seconds it took."""
    global _warm
    started = time.monotonic()
    from django.db import connection
    from django.template.loader import get_template
    from django.urls import get_resolver

    from assistants_app.runs.executor import _warm_up
    from assistants_app.web import consumers  # noqa: F401  (channels, the socket's modules)
    from assistants_app.web.rendering import LiveMarkdown, markdown_to_html

    _warm_up()  # tool modules, the tokenizer
    _warm_model_client()
    get_resolver().url_patterns  # noqa: B018  (imports every view module)
    for name in ("chat/page.html", "chat/fragments.html", "chat/sidebar.html", "registration/login.html"):
        get_template(name)
    markdown_to_html("**warm** `up`\n\n```python\nprint('x')\n```\n\n| a |\n|---|\n| 1 |\n")
    live = LiveMarkdown()
    live.append("warm\n\nup")
    live.render()
    connection.ensure_connection()
    connection.close()  # the serving threads open their own
    _warm = True
    seconds = time.monotonic() - started
    log.info("warmed up in %.2f s", seconds)
    return seconds


def _warm_model_client() -> None:
    """The openai SDK: its import, its lazily loaded resources and response models (their pydantic
    validators are built on first use). No request is made."""
    import openai
    from openai.types.chat import ChatCompletionChunk

    from assistants_app.backends import openai_compat  # noqa: F401  (and its client module)

    client = openai.AsyncOpenAI(base_url="http://127.0.0.1:9/v1", api_key="warm-up", max_retries=0)
    client.chat.completions  # noqa: B018  (imports the resource modules)
    ChatCompletionChunk.model_validate(
        {
            "id": "c",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": "m",
            "choices": [{"index": 0, "delta": {"role": "assistant", "content": "x"}, "finish_reason": None}],
        }
    )


def is_warm() -> bool:
    return _warm
