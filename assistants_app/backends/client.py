"""The one place an `openai.AsyncOpenAI` client is built, and the requests made through it.

Clients are shared per event loop and upstream. Their HTTP goes through aiohttp, with the SDK's own
aiohttp client (`openai.DefaultAioHttpClient`, the `openai[aiohttp]` extra): aiohttp parses a
response in C and hands over everything that arrived in one read, where httpx's HTTP/1.1 stack
(httpcore and h11, in Python) cost ~100 µs of CPU per streamed chunk, about 40% of what this server
spent per token (docs/benchmarks.md, tenth session). The backend (openai_compat) streams completions
with `open_stream`; the admin lists an upstream's models with `fetch_models`.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from contextvars import ContextVar
from typing import Any

import httpx2
import openai
from openai._constants import RAW_RESPONSE_HEADER

# Local servers (Ollama, llama.cpp) ignore the key, but the SDK refuses an empty one.
PLACEHOLDER_API_KEY = "not-needed"
LIST_MODELS_TIMEOUT = 5.0
# The SDK's default pool size (openai._constants.DEFAULT_CONNECTION_LIMITS), for aiohttp's connector.
_CONNECTION_LIMITS = httpx2.Limits(max_connections=1000, max_keepalive_connections=100)


# Connection pools belong to the event loop that opened them, so clients are cached per loop
# (weakly, so a finished loop's clients go away with it) and then per (base_url, api_key).
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str], openai.AsyncOpenAI]] = (
    weakref.WeakKeyDictionary()
)
_loopless_clients: dict[tuple[str, str], openai.AsyncOpenAI] = {}
# Set inside `private_clients()`: the clients of that block, not shared with the rest of the loop.
_private: ContextVar[dict[tuple[str, str], openai.AsyncOpenAI] | None] = ContextVar(
    "private_clients", default=None
)


def build_client(
    base_url: str, api_key: str, *, connect_timeout: float = 10.0, stall_timeout: float = 60.0
) -> openai.AsyncOpenAI:
    """Return the shared `AsyncOpenAI` client for (base_url, api_key) on the running event loop.

    The timeouts given here are only the client's defaults, used by whoever builds it first; the
    backend passes its own timeouts with every request. The SDK's retries are off: the backend retries
    (openai_compat's module doc says why).
    """
    key = (base_url.rstrip("/"), api_key or PLACEHOLDER_API_KEY)
    cache = _private.get()
    if cache is None:
        try:
            cache = _clients.setdefault(asyncio.get_running_loop(), {})
        except RuntimeError:
            cache = _loopless_clients
    client = cache.get(key)
    if client is None or client.is_closed():
        timeout = client_timeout(connect_timeout, stall_timeout)
        client = openai.AsyncOpenAI(
            base_url=key[0],
            api_key=key[1],
            max_retries=0,
            timeout=timeout,
            http_client=openai.DefaultAioHttpClient(timeout=timeout, limits=_CONNECTION_LIMITS),
        )
        cache[key] = client
    return client


async def close_clients() -> None:
    """Close the clients cached for the running event loop (for shutdown and test teardown).

    aiohttp's sessions must be closed on their loop: one left to the garbage collector logs an
    "Unclosed client session" error (and its sockets stay open until then)."""
    cache = _clients.pop(asyncio.get_running_loop(), {})
    for client in cache.values():
        await client.close()


@contextlib.asynccontextmanager
async def private_clients() -> AsyncIterator[None]:
    """Within the block (and the tasks it starts), `build_client` gives clients of the block's
    own, closed at its end. For code whose event loop may end with it (`asyncio.run`, or
    `async_to_sync` from a thread outside any loop), without closing the clients that other work on
    a long-lived loop shares."""
    cache: dict[tuple[str, str], openai.AsyncOpenAI] = {}
    token = _private.set(cache)
    try:
        yield
    finally:
        _private.reset(token)
        for client in cache.values():
            await client.close()


def client_timeout(connect_timeout: float, stall_timeout: float) -> httpx2.Timeout:
    # `read` bounds the silence between two reads, which is exactly "the stream stalled".
    return httpx2.Timeout(
        connect=connect_timeout, read=stall_timeout, write=stall_timeout, pool=connect_timeout
    )


async def open_stream(
    client: openai.AsyncOpenAI, params: dict[str, Any], timeouts: httpx2.Timeout
) -> httpx2.Response:
    """POST /chat/completions through the SDK and return the response with its body unread.

    What `chat.completions.with_streaming_response.create()` does, minus its first step: the SDK
    walks the arguments against its TypedDicts to rename aliased keys and convert iterables
    (`async_maybe_transform`), which costs ~0.13 ms per message of the prompt (bench_backend
    --history): ~3 ms per run in a 20-message conversation. openai_compat._params builds plain JSON in
    the wire's names, so that walk changes nothing. The SDK still builds the request (headers, auth,
    base_url), sends it, and raises its typed errors on a 4xx/5xx after reading the error body.
    """
    return await client.post(
        "/chat/completions",
        body=params,
        cast_to=httpx2.Response,
        # The header the SDK's own streaming-response wrapper sets: send with stream=True, so the
        # body is left unread for us (see openai_stream for why we parse it ourselves).
        options={"timeout": timeouts, "headers": {RAW_RESPONSE_HEADER: "stream"}},
    )


async def fetch_models(
    base_url: str, api_key: str, http_timeout: float = LIST_MODELS_TIMEOUT
) -> list[dict[str, Any]]:
    """The upstream's GET /models as OpenAI model objects ({id, object, created, owned_by}), in its
    order. Raises what the SDK raises when the upstream cannot answer."""
    client = build_client(base_url, api_key)
    page = await client.models.list(timeout=http_timeout)
    models = []
    for m in page.data:
        model_id = getattr(m, "id", None)
        if not isinstance(model_id, str) or not model_id:
            continue
        # Local servers leave these out or send other types (llama.cpp: created as a float).
        created = getattr(m, "created", None)
        owned_by = getattr(m, "owned_by", None)
        models.append(
            {
                "id": model_id,
                "object": "model",
                "created": int(created) if isinstance(created, (int, float)) else 0,
                "owned_by": owned_by if isinstance(owned_by, str) and owned_by else "system",
            }
        )
    return models
