"""The backend for any OpenAI-compatible Chat Completions server (OpenAI, Ollama, vLLM, llama.cpp, ...).

Its requests go through the one shared `openai.AsyncOpenAI` client (client.py). Retrying is done
here, not by the SDK, because only this code knows whether text has already reached the caller: a
retry after that would show the user the start of the answer twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import logging
import random
import ssl
import time
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

import aiohttp
import httpx2
import openai

from .base import BackendError, ChatRequest, StreamEvent
from .client import PLACEHOLDER_API_KEY, build_client, client_timeout, open_stream
from .openai_stream import ChunkMapper, SSEDecoder, decode_data, merge_text
from .pacing import aiohttp_response_of, hold
from .refusals import image_refusal

logger = logging.getLogger(__name__)

OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
# An upstream asking us to wait longer than this is treated as if it asked for this long: a run that
# sleeps for minutes looks hung to the user, and the caller can retry the whole run later.
DEFAULT_MAX_RETRY_DELAY = 20.0

# Statuses worth another attempt. 408/409 are transient too (the SDK retries them for the same reason).
_RETRY_STATUSES = frozenset({408, 409, 429})
_INVALID_PROMPT_STATUSES = frozenset({400, 404, 413, 422})
# What a dropped connection raises while the body is read: httpx's errors (the SDK's aiohttp transport
# maps aiohttp's to them), aiohttp's that it leaves as they are, and TLS failures.
_TRANSPORT_ERRORS = (httpx2.RequestError, aiohttp.ClientError, ssl.SSLError)
# After [DONE], how long the rest of the body (normally just the end of the chunked encoding) may
# take to arrive so the connection can go back to the pool; the SDK waits the same.
_DRAIN_SECONDS = 0.1


# --------------------------------------------------------------------------------------------------
# The backend


class _Retry(Exception):
    """Internal: this attempt failed in a way that another attempt may fix."""

    def __init__(self, error: BackendError, delay: float | None = None) -> None:
        super().__init__(error.message)
        self.error = error
        self.delay = delay  # what the upstream asked for (retry-after), if anything


class OpenAICompatBackend:
    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        connect_timeout: float = 10.0,
        stall_timeout: float = 60.0,
        max_retries: int = 3,
        retry_base: float = 0.5,
        max_retry_delay: float = DEFAULT_MAX_RETRY_DELAY,
        read_interval: float = 0.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.api_key = api_key or PLACEHOLDER_API_KEY
        self.connect_timeout = connect_timeout
        self.stall_timeout = stall_timeout
        self.max_retries = max(0, max_retries)
        self.retry_base = retry_base
        self.max_retry_delay = max_retry_delay
        # Seconds between two reads of a stream's body once text flows (0: read as bytes arrive).
        self.read_interval = max(0.0, read_interval)
        self._timeout = client_timeout(connect_timeout, stall_timeout)

    def __repr__(self) -> str:
        return f"OpenAICompatBackend({self.base_url!r})"  # never the key

    async def stream(self, request: ChatRequest) -> AsyncGenerator[StreamEvent, None]:
        """Yield the completion's events: text and tool-call deltas as they arrive, then at most one
        Usage, then exactly one Finish (always last). Raises BackendError."""
        client = build_client(
            self.base_url,
            self.api_key,
            connect_timeout=self.connect_timeout,
            stall_timeout=self.stall_timeout,
        )
        params = _params(request)
        attempt = 0
        while True:
            # Only a failure before anything was yielded reaches here as _Retry; see _attempt.
            try:
                # aclosing: when our caller closes us, the attempt (and its HTTP response) closes now,
                # not whenever the garbage collector gets to it.
                async with aclosing(self._attempt(client, params)) as events:
                    async for event in events:
                        yield event
                return
            except _Retry as failure:
                if attempt >= self.max_retries:
                    raise failure.error from failure.__cause__
                delay = self._backoff(attempt, failure.delay)
                attempt += 1
                logger.warning(
                    "upstream %s failed (%s); retry %d/%d in %.2fs",
                    self.base_url,
                    failure.error.message,
                    attempt,
                    self.max_retries,
                    delay,
                )
                await asyncio.sleep(delay)

    def _backoff(self, attempt: int, requested: float | None) -> float:
        if requested is not None:
            return min(max(requested, 0.0), self.max_retry_delay)
        exponential = min(self.retry_base * 2.0**attempt, self.max_retry_delay)
        # Jitter keeps many runs that failed together from retrying in lockstep.
        return exponential * random.uniform(0.5, 1.0)

    async def _attempt(
        self, client: openai.AsyncOpenAI, params: dict[str, Any]
    ) -> AsyncGenerator[StreamEvent, None]:
        async with contextlib.AsyncExitStack() as stack:
            try:
                response = await open_stream(client, params, self._timeout)
            except openai.APIStatusError as err:
                raise self._status_error(err, params) from err
            except openai.APITimeoutError as err:
                raise _Retry(self._timeout_error(err.__cause__, streaming=False)) from err
            except openai.APIConnectionError as err:
                raise _Retry(self._connection_error()) from err
            # Closed first on every exit (normal end, error, aclose() of a cancelled run, which must
            # stop paying for tokens), then the response and its connection.
            stack.push_async_callback(response.aclose)
            body = response.aiter_bytes()
            stack.push_async_callback(body.aclose)

            decoder, mapper = SSEDecoder(), ChunkMapper()
            yielded = done = False
            aio = aiohttp_response_of(response) if self.read_interval else None
            try:
                async for data in body:
                    events: list[StreamEvent] = []
                    failure: BackendError | None = None
                    try:
                        for event, payload in decoder.feed(data):
                            if payload.startswith(b"[DONE]"):
                                done = True
                                break
                            events.extend(mapper.feed(decode_data(event, payload)))
                    except BackendError as err:
                        failure = err  # after what came before it in this read
                    for ev in merge_text(events):
                        yielded = True
                        yield ev
                    if failure is not None:
                        raise failure
                    if done:
                        break
                    if yielded and self.read_interval:
                        # Once something went out, the body is read once per tick (pacing.py); the
                        # first event is never delayed.
                        await hold(aio, self.read_interval)
            except httpx2.TimeoutException as err:
                if mapper.finish is None:
                    error = self._timeout_error(err, streaming=True)
                    raise (error if yielded else _Retry(error)) from err
                # The answer was complete; only the tail ([DONE]) never came. Keep the answer.
            except _TRANSPORT_ERRORS as err:
                if mapper.finish is None:
                    error = _dropped_error()
                    raise (error if yielded else _Retry(error)) from err
            if done:
                await _drain(body)

        if mapper.finish is None:
            # Without a finish_reason the answer may be cut off; don't let it pass as complete.
            error = BackendError(
                "server_error",
                "The upstream model server ended the stream without a finish_reason.",
                retryable=True,
            )
            raise error if yielded else _Retry(error)
        for last in mapper.tail(mapper.finish):
            yield last

    def _status_error(self, err: openai.APIStatusError, params: dict[str, Any]) -> BackendError | _Retry:
        status = err.status_code
        detail = _upstream_message(err)
        if status == 429:
            error = BackendError(
                "rate_limit_exceeded",
                f"The upstream model server is rate limiting requests: {detail}",
                retryable=True,
            )
            if _error_code(err) == "insufficient_quota":
                return BackendError("rate_limit_exceeded", f"The upstream account is out of quota: {detail}")
            return _Retry(error, _retry_after(err.response))
        if status >= 500 or status in _RETRY_STATUSES:
            error = BackendError(
                "server_error", f"The upstream model server failed (HTTP {status}): {detail}", retryable=True
            )
            return _Retry(error, _retry_after(err.response))
        if status in (401, 403):
            return BackendError(
                "server_error",
                f"The upstream model server rejected the API key (HTTP {status}). "
                "The operator should check OPENAI_API_KEY (and OPENAI_BASE_URL).",
            )
        if status in _INVALID_PROMPT_STATUSES:
            refusal = image_refusal(params["model"], params["messages"], detail)
            return refusal or BackendError(
                "invalid_prompt", f"The upstream model server refused the request: {detail}"
            )
        return BackendError("server_error", f"The upstream model server answered HTTP {status}: {detail}")

    def _timeout_error(self, cause: BaseException | None, *, streaming: bool) -> BackendError:
        if not _timed_out(cause):  # a refused or dropped connection that httpx calls a timeout
            return _dropped_error() if streaming else self._connection_error()
        if isinstance(cause, httpx2.ConnectTimeout):
            message = f"Could not connect to the upstream model server at {self.base_url} within {self.connect_timeout:g}s."
        else:
            where = "mid-stream" if streaming else "before answering"
            message = f"The upstream stalled {where}: no data for {self.stall_timeout:g}s."
        return BackendError("server_error", message, retryable=True)

    def _connection_error(self) -> BackendError:
        return BackendError(
            "server_error",
            f"Could not connect to the upstream model server at {self.base_url}.",
            retryable=True,
        )


def _dropped_error() -> BackendError:
    return BackendError(
        "server_error", "The upstream model server dropped the connection mid-answer.", retryable=True
    )


def _timed_out(err: BaseException | None) -> bool:
    """Whether an httpx timeout really was one. The SDK's aiohttp transport maps every aiohttp
    connection error to httpx's ConnectTimeout, a refused connection or a server that hung up
    included: the aiohttp error it came from (its cause) says which it was."""
    cause = err.__cause__ if err is not None else None
    if isinstance(cause, aiohttp.ClientError):
        return isinstance(cause, aiohttp.ServerTimeoutError)
    return True


async def _drain(body: AsyncIterator[bytes]) -> None:
    with contextlib.suppress(TimeoutError, *_TRANSPORT_ERRORS):
        async with asyncio.timeout(_DRAIN_SECONDS):
            async for _ in body:
                pass


def _params(request: ChatRequest) -> dict[str, Any]:
    """The create() arguments: only what the request sets, so servers that reject unknown or
    unsupported fields (many local ones) are not sent them."""
    params: dict[str, Any] = {
        "model": request.model,
        "messages": request.messages,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    if request.tools:
        params["tools"] = request.tools
        if request.tool_choice is not None:
            params["tool_choice"] = request.tool_choice
        if request.parallel_tool_calls is not None:
            params["parallel_tool_calls"] = request.parallel_tool_calls
    for name in ("temperature", "top_p", "max_tokens", "response_format"):
        value = getattr(request, name)
        if value is not None:
            params[name] = value
    return params


# --------------------------------------------------------------------------------------------------
# Error details


def _upstream_message(err: openai.APIStatusError) -> str:
    body = err.body
    if isinstance(body, dict):
        message = body.get("message")
        if isinstance(message, str) and message:
            return message
    if isinstance(body, str) and body:
        return body[:500]
    return err.message


def _error_code(err: openai.APIStatusError) -> str | None:
    return err.body.get("code") if isinstance(err.body, dict) else None


def _retry_after(response: httpx2.Response) -> float | None:
    """Seconds the upstream asked us to wait, from retry-after-ms or retry-after (seconds or HTTP date)."""
    headers = response.headers
    try:
        if "retry-after-ms" in headers:
            return float(headers["retry-after-ms"]) / 1000
    except ValueError:
        pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return when.timestamp() - time.time()


# --------------------------------------------------------------------------------------------------
# Configuration and discovery


def backend_from_settings(base_url: str | None = None, api_key: str | None = None) -> OpenAICompatBackend:
    """A backend for the given upstream, defaults taken from Django settings."""
    from django.conf import settings

    base_url = (base_url or settings.OPENAI_BASE_URL or "").strip()
    api_key = (api_key or settings.OPENAI_API_KEY or "").strip()
    if not base_url and not api_key:
        raise BackendError(
            "server_error",
            "No model backend is configured: set OPENAI_BASE_URL (for example http://127.0.0.1:11434/v1 "
            "for Ollama, or https://api.openai.com/v1) and OPENAI_API_KEY (any value for local servers "
            "that ignore it) in the server's environment, then restart it.",
        )
    return OpenAICompatBackend(
        base_url or OPENAI_DEFAULT_BASE_URL,
        api_key or PLACEHOLDER_API_KEY,
        connect_timeout=settings.UPSTREAM_CONNECT_TIMEOUT,
        stall_timeout=settings.UPSTREAM_STALL_TIMEOUT,
        max_retries=settings.UPSTREAM_MAX_RETRIES,
        retry_base=settings.UPSTREAM_RETRY_BASE_SECONDS,
        read_interval=settings.UPSTREAM_READ_INTERVAL_MS / 1000,
    )
