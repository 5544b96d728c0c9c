"""`rewrite_query` on vector store search: the model turns each natural-language query into a short
search query, and the search runs with that.

This is the one place a request waits on the model, and deliberately so: the search's answer depends
on the model's, so a queued job would only move the call elsewhere while the request still waited for
it (and add a worker round trip). Instead the call is bounded: one short, non-streamed-to-anyone
completion (at most REWRITE_MAX_TOKENS, temperature 0) through the backend interface
(backends.get_backend, the default backend), all queries at once, within
VECTOR_STORE_REWRITE_TIMEOUT seconds in all (the backend's own retries included). The request's
thread waits; the server's event loop does not.

A backend that fails or is slower than that does not fail the search: the query is searched as
given (logged), and the response's `search_query` says what was searched. With no model configured
at all, `rewrite_query: true` is a 400 that says so.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings

from assistants_app.backends import BackendError, get_backend
from assistants_app.backends.base import ChatRequest, TextDelta
from assistants_app.backends.client import private_clients
from assistants_app.errors import InvalidRequest

log = logging.getLogger(__name__)

REWRITE_MAX_TOKENS = 64
QUOTES = "\"'`\u201c\u201d\u2018\u2019 "  # ASCII and typographic quotes, and spaces
MAX_QUERY_CHARS = 4096  # as the API accepts (api/request_specs.py)
INSTRUCTIONS = (
    "You turn a user's question into a query for a document search engine. Answer with the search "
    "query only: the few words most likely to appear in the documents that answer it, on one line, "
    "with no explanation and no quotes."
)


def rewrite_model() -> str:
    return str(settings.VECTOR_STORE_REWRITE_MODEL or settings.DEFAULT_MODEL)


def rewrite_queries(queries: list[str]) -> list[str]:
    """Each query rewritten by the model (the original where the model gave nothing usable)."""
    try:
        backend = get_backend(None)
    except BackendError as exc:
        raise InvalidRequest(
            f"rewrite_query needs a model, and none is configured on this server: {exc.message}",
            param="rewrite_query",
            code="unsupported_parameter",
        ) from None

    async def all_of_them() -> list[str | None]:
        # Called from a search's thread, this may run on a loop of its own that ends with the call.
        async with private_clients(), asyncio.timeout(float(settings.VECTOR_STORE_REWRITE_TIMEOUT)):
            return list(await asyncio.gather(*(_rewrite(backend, q) for q in queries)))

    try:
        rewritten = async_to_sync(all_of_them)()
    except (TimeoutError, BackendError) as exc:
        why = exc.message if isinstance(exc, BackendError) else "timed out"
        log.warning("rewrite_query failed (%s); searching the %d queries as given", why, len(queries))
        return list(queries)
    return [new or old for new, old in zip(rewritten, queries, strict=True)]


async def _rewrite(backend: Any, query: str) -> str | None:
    request = ChatRequest(
        model=rewrite_model(),
        messages=[{"role": "system", "content": INSTRUCTIONS}, {"role": "user", "content": query}],
        temperature=0.0,
        max_tokens=REWRITE_MAX_TOKENS,
    )
    text = []
    stream = backend.stream(request)
    try:
        async for event in stream:
            if isinstance(event, TextDelta):
                text.append(event.text)
    finally:
        await stream.aclose()
    return clean("".join(text))


def clean(answer: str) -> str | None:
    """The search query in a model's answer: its first non-empty line, without wrapping quotes or a
    "Search query:" label; None when nothing is left."""
    line = next((ln.strip() for ln in answer.splitlines() if ln.strip()), "")
    label, sep, rest = line.partition(":")
    if sep and label.strip().lower() in {"query", "search query", "rewritten query"}:
        line = rest.strip()
    line = line.strip(QUOTES).strip()
    return line[:MAX_QUERY_CHARS] or None
