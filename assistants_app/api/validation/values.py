"""Values any field may carry: text every database can store, JSON no deeper than its walkers can
follow, and the 400 that names the parameter."""

from __future__ import annotations

from typing import Any

from assistants_app.errors import InvalidRequest
from assistants_app.lib.jsontypes import type_message


def type_error(path: str, expected: str, value: Any) -> InvalidRequest:
    return InvalidRequest(type_message(path, expected, value), param=path)


def check_text(value: str, path: str) -> str:
    """Text every database can store: PostgreSQL refuses NUL characters (in text and jsonb alike),
    and a lone surrogate (JSON "\\ud800") is not encodable as UTF-8. Either would otherwise be a 500."""
    if "\x00" in value:
        raise InvalidRequest(f"Invalid '{path}': strings must not contain NUL characters.", param=path)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidRequest(
            f"Invalid '{path}': not valid Unicode (unpaired surrogate).", param=path
        ) from None
    return value


# Deeper JSON is refused with a 400: json.loads and every recursive walk over the value (here, the
# JSON encoder, jsonschema) would otherwise raise RecursionError, a 500. No real schema or payload
# comes near it (OpenAI's structured outputs allow 10 levels of nesting).
MAX_JSON_DEPTH = 64


def too_deep(path: str) -> InvalidRequest:
    return InvalidRequest(
        f"Invalid '{path or 'body'}': JSON nested more than {MAX_JSON_DEPTH} levels deep.",
        param=path or None,
        code="nested_too_deeply",
    )


def check_depth(value: Any, path: str = "") -> None:
    """Raise a 400 for JSON nested deeper than MAX_JSON_DEPTH; iterative, so any depth is safe.

    The error names `path` or, for a whole body, the top-level parameter that holds the deep value.
    """
    stack: list[tuple[Any, int, str]] = [(value, 0, path)]
    while stack:
        item, depth, where = stack.pop()
        if isinstance(item, dict | list):
            if depth >= MAX_JSON_DEPTH:
                raise too_deep(where)
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                top = where or (str(key) if isinstance(item, dict) else f"[{key}]")
                stack.append((child, depth + 1, top))


def check_json_text(value: Any, path: str) -> None:
    # Iterative (an explicit stack), so that no nesting depth can exhaust Python's recursion limit.
    check_depth(value, path)
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            check_text(item, where)
        elif isinstance(item, dict):
            for k, v in item.items():
                check_text(k, where)
                stack.append((v, join(where, k)))
        elif isinstance(item, list):
            stack.extend((v, f"{where}[{i}]") for i, v in enumerate(item))


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
