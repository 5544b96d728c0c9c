"""Calling a function's endpoint: the arguments go out, the answer (or what went wrong) comes back
as the tool output the model reads. Nothing here fails the run: a refused address, a timeout, an
HTTP error or an oversized answer is a tool output the model can react to.

One request per call (plus same-host redirects, at most MAX_REDIRECTS): POST sends the arguments
object as a JSON body, GET as query parameters. The whole call, redirects included, is bounded by
the endpoint's timeout; the answer is read up to its byte cap (after decompression, which is
bounded the same way) and cut there with a marker.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx2
from django.conf import settings

from assistants_app.models import FunctionEndpoint

from . import guard

log = logging.getLogger(__name__)

MAX_REDIRECTS = 3
USER_AGENT = "assistants-platform-function-endpoint/1"
NOT_CALLED = "the endpoint was not called"


@dataclass(frozen=True)
class Endpoint:
    """What the engine needs of a FunctionEndpoint row, detached from the database."""

    function: str
    url: str
    method: str
    header_env: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 10.0
    max_bytes: int = 64 * 1024

    @classmethod
    def from_row(cls, row: FunctionEndpoint) -> Endpoint:
        return cls(
            function=row.function_name,
            url=row.url,
            method=row.method,
            header_env=dict(row.header_env or {}),
            timeout=float(row.timeout_seconds),
            max_bytes=int(row.max_response_bytes),
        )


def endpoints_of(assistant_id: str) -> dict[str, Endpoint]:
    """The assistant's endpoints by function name (synchronous: call it on a database thread)."""
    return {
        row.function_name: Endpoint.from_row(row)
        for row in FunctionEndpoint.objects.filter(assistant_id=assistant_id)
    }


class _Refused(Exception):
    """An answer that is not followed (a redirect elsewhere): its text is the tool output."""


async def call(endpoint: Endpoint, arguments: str, parameters: Mapping[str, Any] | None = None) -> str:
    """The tool output for the model's call of `endpoint`'s function with `arguments` (its JSON)."""
    args, problem = _arguments(arguments, parameters)
    if problem:
        return f"Error: {problem}; {NOT_CALLED}."
    headers, missing = _headers(endpoint)
    if missing:
        log.warning(
            "function endpoint %s: environment variable(s) %s not set", endpoint.function, ", ".join(missing)
        )
        return f"Error: the endpoint is not configured on this server (a header's value is missing); {NOT_CALLED}."
    try:
        policy = guard.policy_for(settings.FUNCTION_ENDPOINTS_ALLOWED_PRIVATE)
    except ValueError as exc:
        log.error("FUNCTION_ENDPOINTS_ALLOWED_PRIVATE: %s", exc)
        return f"Error: the server's endpoint settings are invalid; {NOT_CALLED}."
    try:
        async with asyncio.timeout(endpoint.timeout):
            return await _request(endpoint, args, headers, policy)
    except (TimeoutError, httpx2.TimeoutException):
        return f"Error: the endpoint did not answer within {endpoint.timeout:g} seconds."
    except guard.RefusedAddress as exc:
        log.warning("function endpoint %s refused: %s", endpoint.function, exc)
        return f"Error: the endpoint's address is not public and not allowed on this server; {NOT_CALLED}."
    except _Refused as exc:
        return str(exc)
    except httpx2.HTTPError as exc:
        log.info("function endpoint %s failed: %r", endpoint.function, exc)
        return f"Error: the endpoint could not be reached ({type(exc).__name__}: {exc})."


def _arguments(arguments: str, parameters: Mapping[str, Any] | None) -> tuple[dict[str, Any], str]:
    """The arguments object, or a problem: the model's output is untrusted, and an endpoint should
    only ever receive arguments that match the function's declared parameters."""
    try:
        args = json.loads(arguments or "{}")
    except ValueError as exc:
        return {}, f"the arguments are not valid JSON ({exc})"
    if not isinstance(args, dict):
        return {}, "the arguments must be a JSON object"
    if parameters:
        from jsonschema.exceptions import best_match
        from jsonschema.validators import validator_for

        error = best_match(validator_for(parameters)(parameters).iter_errors(args))
        if error is not None:
            at = "/".join(str(p) for p in error.absolute_path)
            return (
                {},
                f"the arguments do not match the function's parameters{f' at {at!r}' if at else ''}: {error.message}",
            )
    return args, ""


def _headers(endpoint: Endpoint) -> tuple[dict[str, str], list[str]]:
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "gzip, deflate, identity"}
    missing = []
    for name, variable in endpoint.header_env.items():
        value = os.environ.get(variable)
        if value is None:
            missing.append(variable)
        else:
            headers[name] = value
    return headers, missing


def _query(args: Mapping[str, Any]) -> dict[str, str]:
    # Strings as they are; anything else (numbers, booleans, lists, objects) as its JSON.
    return {k: v if isinstance(v, str) else json.dumps(v, ensure_ascii=False) for k, v in args.items()}


async def _request(
    endpoint: Endpoint, args: dict[str, Any], headers: dict[str, str], policy: guard.Policy
) -> str:
    timeout = httpx2.Timeout(endpoint.timeout)
    async with httpx2.AsyncClient(
        transport=guard.transport(policy), timeout=timeout, follow_redirects=False, trust_env=False
    ) as client:
        if endpoint.method == FunctionEndpoint.Method.GET:
            # Merged into the URL's own query: httpx's `params=` would replace it.
            url = httpx2.URL(endpoint.url).copy_merge_params(_query(args))
            request = client.build_request("GET", url, headers=headers)
        else:
            request = client.build_request(endpoint.method, endpoint.url, headers=headers, json=args)
        host = request.url.host
        for _ in range(MAX_REDIRECTS + 1):
            response = await client.send(request, stream=True)
            try:
                following = response.next_request
                if following is None:
                    return await _answer(response, endpoint.max_bytes)
                if following.url.host != host:
                    log.warning(
                        "function endpoint %s redirected to another host (%s): not followed",
                        endpoint.function,
                        following.url.host,
                    )
                    raise _Refused(
                        f"Error: the endpoint redirected to another host (HTTP {response.status_code}); "
                        "only redirects on the same host are followed."
                    )
                if request.url.scheme == "https" and following.url.scheme != "https":
                    raise _Refused("Error: the endpoint redirected from https to http; not followed.")
                request = following
            finally:
                await response.aclose()
    return f"Error: the endpoint redirected more than {MAX_REDIRECTS} times."


async def _answer(response: httpx2.Response, cap: int) -> str:
    body, cut = await read_capped(response, cap)
    try:
        text = body.decode(response.charset_encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        text = body.decode("utf-8", errors="replace")
    if cut:
        text += f"\n[response truncated: it is longer than {cap} bytes]"
    if response.is_success:
        return text
    status = f"HTTP {response.status_code} {response.reason_phrase}".rstrip()
    return f"Error: the endpoint answered {status}." + (f"\n{text}" if text else "")


async def read_capped(response: httpx2.Response, cap: int) -> tuple[bytes, bool]:
    """At most `cap` bytes of the (decompressed) body, and whether there was more. Decompression is
    bounded too (max_length): a small compressed answer cannot inflate past the cap in memory."""
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip", "deflate", "x-gzip"):
        raise _Refused(f"Error: the endpoint answered with an unsupported content encoding ({encoding}).")
    # wbits 47: a gzip or zlib stream, detected from its header; deflate may also be raw (-15).
    inflater = zlib.decompressobj(47) if encoding != "identity" else None
    out = bytearray()
    async for chunk in response.aiter_raw():
        pending = chunk
        while pending:
            if inflater is None:
                data, pending = pending, b""
            else:
                try:
                    data = inflater.decompress(pending, cap + 1 - len(out))
                except zlib.error as exc:
                    raise _Refused(f"Error: the endpoint's compressed answer is corrupt ({exc}).") from exc
                pending = inflater.unconsumed_tail
            out += data
            if len(out) > cap:
                return bytes(out[:cap]), True
            if inflater is not None and inflater.eof:
                pending = b""
    return bytes(out), False
