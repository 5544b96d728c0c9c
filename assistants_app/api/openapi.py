"""The OpenAPI 3.1 description of /v1, built from the same operation table and validators that
serve the requests, so that it cannot describe an API the server does not implement."""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from django.http import JsonResponse

from .response_schemas import COMPONENTS, ref
from .routing import MAX_ID_LENGTH, PATH_PARAMETERS, Ctx, Operation

ERRORS = {
    "400": "Invalid request: the error's `param` names the offending parameter",
    "401": "Missing, unknown or revoked API key",
    "404": "No such object (or it belongs to another user)",
    "405": "Method not allowed on this URL",
    "429": "Rate limit reached for this API key, too many bad keys from this address, or (starting a run) too many runs already queued or in progress",
    "500": "Server error",
}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def _operation(op: Operation) -> dict[str, Any]:
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "maxLength": PATH_PARAMETERS.get(name, MAX_ID_LENGTH)},
        }
        for name in re.findall(r"{(\w+)}", op.path)
    ]
    if op.query is not None:
        params += op.query.parameters()
    doc: dict[str, Any] = {"operationId": op.op_id, "summary": op.summary, "tags": list(op.tags)}
    if params:
        doc["parameters"] = params
    if op.body is not None:
        # A body whose every field is optional may be left out altogether (the server reads it as {}).
        required = any(f.required for f in op.body.fields.values())
        doc["requestBody"] = {
            "required": required,
            "content": {"application/json": {"schema": op.body.base_schema()}},
        }
    if op.multipart:
        doc["requestBody"] = {
            "required": True,
            "content": {
                "multipart/form-data": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "file": {"type": "string", "format": "binary"},
                            "purpose": {
                                "type": "string",
                                "enum": ["assistants", "batch", "fine-tune", "vision", "user_data", "evals"],
                            },
                        },
                        "required": ["file", "purpose"],
                    }
                }
            },
        }
    if op.binary:
        ok: dict[str, Any] = {
            "description": "The file's bytes",
            # Served with the content type sniffed at upload (application/pdf, image/png, text/plain, ...).
            "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
        }
    else:
        content: dict[str, Any] = {"application/json": {"schema": ref(op.response)}}
        if op.stream:
            content["text/event-stream"] = {
                "schema": {"type": "string"},
                "description": "With `stream: true`: `event:`/`data:` frames, ending with `event: done` / `data: [DONE]`",
            }
        ok = {"description": "OK", "content": content}
    ok["headers"] = {h: {"schema": {"type": "string"}} for h in ("x-request-id", *op.headers)}
    responses: dict[str, Any] = {"200": ok}
    wanted = ["400", "404", "405", "500"] if op.public else list(ERRORS)
    if op.multipart:
        wanted.append("413")
        too_large = "The file is larger than FILE_UPLOAD_MAX_BYTES"
    elif op.body is not None:
        # Any body can exceed DATA_UPLOAD_MAX_MEMORY_SIZE.
        wanted.append("413")
        too_large = "The request body is larger than DATA_UPLOAD_MAX_MEMORY_SIZE"
    for code in wanted:
        responses[code] = _error(ERRORS.get(code) or too_large)
    doc["responses"] = responses
    if op.public:
        doc["security"] = []
    return doc


@cache
def document() -> dict[str, Any]:
    from .operations import OPERATIONS

    paths: dict[str, dict[str, Any]] = {}
    for op in [OPERATION, *OPERATIONS]:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Assistants API (self-hosted)",
            "version": "v2",
            "description": "An OpenAI Assistants API v2 compatible server. Authenticate with "
            "`Authorization: Bearer <key>` (keys come from `manage.py create_api_key`).",
        },
        "servers": [{"url": "/v1"}],
        "security": [{"bearer": []}],
        "paths": paths,
        "components": {
            "schemas": COMPONENTS,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def serve(ctx: Ctx) -> JsonResponse:
    return JsonResponse(document())


OPERATION = Operation(
    "GET", "/openapi.json", serve, "getOpenAPI", "This document", "", public=True, tags=("Meta",)
)
