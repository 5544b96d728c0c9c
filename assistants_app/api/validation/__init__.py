"""Declarative request validation that also writes the OpenAPI schema.

Each endpoint's body and query string are described once with these field types. `check()` turns a
bad value into an OpenAI-style 400 naming the exact parameter (`metadata.modified_today`,
`tools[0].function.name`); `schema()` emits the JSON Schema that openapi.py publishes. Because both
come from the same object, the published description cannot drift from what the server enforces.

Unknown keys are always rejected (never silently ignored): a client that sends a parameter this
server does not implement learns so at once instead of getting a quietly different behaviour.
`null` means "not given" for every optional field, as in OpenAI's API.
"""

from __future__ import annotations

from .fields import (
    AnyObject,
    Arr,
    Bool,
    Const,
    Either,
    Field,
    Int,
    Metadata,
    Num,
    Obj,
    Str,
    Tagged,
)
from .query import Query, list_query
from .values import MAX_JSON_DEPTH, check_depth, check_json_text, check_text, join, too_deep, type_error

__all__ = [
    "MAX_JSON_DEPTH",
    "AnyObject",
    "Arr",
    "Bool",
    "Const",
    "Either",
    "Field",
    "Int",
    "Metadata",
    "Num",
    "Obj",
    "Query",
    "Str",
    "Tagged",
    "check_depth",
    "check_json_text",
    "check_text",
    "join",
    "list_query",
    "too_deep",
    "type_error",
]
