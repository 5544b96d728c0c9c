"""One table of operations drives the URL patterns, request validation and the OpenAPI document.

A view here only authenticates, validates (request_specs.py, with validation/), calls the operation's handler and renders its
result; every failure becomes an OpenAI error object (errors.py), never an HTML page.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.db import OperationalError, connection
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.http.multipartparser import MultiPartParserError
from django.views.decorators.csrf import csrf_exempt

from assistants_app.errors import InvalidRequest, ServerBusy, ServiceError
from assistants_app.server.bodies import accepts_uploads

from . import ratelimit
from .auth import authenticate
from .errors import MethodNotAllowed, PayloadTooLarge, ServerError, UnknownUrl, error_response
from .validation import Obj, Query, check_depth, too_deep

log = logging.getLogger(__name__)


# Object ids in paths are at most this long; the path parameters listed below are not ids, may
# contain "/" (routed with Django's `path` converter) and are this long at most.
MAX_ID_LENGTH = 64
PATH_PARAMETERS = {"model": 256}  # model ids: Assistant.model's max_length


@dataclass
class Ctx:
    request: HttpRequest
    user: Any
    body: dict[str, Any] = field(default_factory=dict)
    query: dict[str, Any] = field(default_factory=dict)


Handler = Callable[..., "dict[str, Any] | HttpResponseBase"]


@dataclass(frozen=True)
class Operation:
    method: str
    path: str  # OpenAPI style, relative to /v1: "/threads/{thread_id}/runs"
    handler: Handler
    op_id: str
    summary: str
    response: str  # a component in openapi.py's schemas
    body: Obj | None = None
    query: Query | None = None
    multipart: bool = False  # the handler reads request.POST / request.FILES itself
    stream: bool = False  # may answer text/event-stream (when the body says stream: true)
    binary: bool = False  # answers raw bytes (file content)
    public: bool = False  # no API key needed
    headers: tuple[str, ...] = ()  # documented response headers
    tags: tuple[str, ...] = ()


def _parse_json(request: HttpRequest) -> Any:
    try:
        raw = request.body
    except RequestDataTooBig:
        raise PayloadTooLarge("The request body is too large.") from None
    if not raw.strip():
        return {}
    try:
        body = json.loads(raw)
    except RecursionError:
        raise too_deep("") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest(
            "We could not parse the JSON body of your request. (HINT: This likely means you aren't using "
            "your HTTP library correctly. The OpenAI API expects a JSON payload.)",
            code="invalid_json",
        ) from None
    check_depth(body)
    return body


def handle(
    op: Operation | None, allowed: list[str], request: HttpRequest, kwargs: dict[str, str]
) -> HttpResponseBase:
    request_id = f"req_{secrets.token_hex(16)}"
    response = _handle(op, allowed, request, kwargs, request_id)
    # The SDK exposes this as `._request_id`; it ties a client's report to the server log.
    response["x-request-id"] = request_id
    return response


def _handle(
    op: Operation | None, allowed: list[str], request: HttpRequest, kwargs: dict[str, str], request_id: str
) -> HttpResponseBase:
    try:
        user = None
        if op is None or not op.public:
            key = authenticate(request)
            ratelimit.check(key.id)
            user = key.user
        if op is None:
            raise MethodNotAllowed(request.method or "", request.path, allowed)
        for name, value in kwargs.items():
            # No id contains these; PostgreSQL would refuse even to look one up (a 500).
            if "\x00" in value or len(value) > PATH_PARAMETERS.get(name, MAX_ID_LENGTH):
                raise UnknownUrl(request.method or "", request.path)
        ctx = Ctx(request=request, user=user)
        if op.query is not None:
            ctx.query = op.query.check(request.GET)
        elif request.GET:
            first = next(iter(request.GET.keys()))
            raise InvalidRequest(
                f"Unrecognized query parameter: {first}", param=first, code="unknown_parameter"
            )
        if op.body is not None:
            ctx.body = op.body.check(_parse_json(request), "")
        result = op.handler(ctx, **kwargs)
        if isinstance(result, HttpResponseBase):
            if result.streaming:
                _release_connection()
            return result
        return JsonResponse(result)
    except ServiceError as err:
        return error_response(err)
    except RequestDataTooBig:
        return error_response(PayloadTooLarge("The request body is too large."))
    except (SuspiciousOperation, MultiPartParserError) as exc:
        return error_response(InvalidRequest(f"Malformed request: {exc}"))
    except OperationalError as exc:
        log.warning("%s %s: database busy (%s): %s", request.method, request.path, request_id, exc)
        return error_response(ServerBusy())
    except Exception:
        log.exception("%s %s failed (%s)", request.method, request.path, request_id)
        return error_response(ServerError())


def _release_connection() -> None:
    """Give this request's database connection back now, not when its streaming response ends.

    Django closes a request's connection at request_finished, which for a streaming response comes
    after its last byte: every open /v1 stream held a pooled PostgreSQL connection for its whole
    length, and streams beyond DB_POOL_SIZE made every other request wait DB_POOL_TIMEOUT. The stream
    itself reads through asyncdb's threads, which return theirs after each call.
    """
    if not connection.in_atomic_block:
        connection.close()


def view_for(ops: list[Operation]) -> Callable[..., HttpResponseBase]:
    by_method = {op.method: op for op in ops}
    allowed = sorted(by_method)

    @csrf_exempt
    def view(request: HttpRequest, **kwargs: str) -> HttpResponseBase:
        return handle(by_method.get(request.method or ""), allowed, request, kwargs)

    if any(op.multipart for op in ops):
        accepts_uploads(view)
    return view


@csrf_exempt
def unknown_url(request: HttpRequest, rest: str = "") -> HttpResponseBase:
    response = error_response(UnknownUrl(request.method or "", request.path))
    response["x-request-id"] = f"req_{secrets.token_hex(16)}"
    return response
