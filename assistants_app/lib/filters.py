"""Attribute filters of vector store search: OpenAI's ComparisonFilter {type, key, value} and
CompoundFilter {type: "and" | "or", filters: [...]}.

One grammar (`parse`) and one meaning (`matches`), shared by the API's request validation
(api/request_specs.py) and by file search itself (tools/file_search/search.py).

- A comparison's value is a string, a number or a boolean; for "in" and "nin", an array of strings
  and numbers (no booleans, as in OpenAI's types).
- Values compare as JSON values: a boolean never equals a number (Python's True == 1 does not
  apply), and ordering ("gt", ...) holds only between two numbers or two strings; anything else
  simply does not match.
- A missing key matches only "ne" and "nin".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from .jsontypes import type_message

COMPARISONS = ("eq", "ne", "gt", "gte", "lt", "lte", "in", "nin")
COMPOUNDS = ("and", "or")


class FilterError(ValueError):
    """A malformed filter; `param` names the field (e.g. filters.filters[0].value)."""

    def __init__(self, message: str, param: str, code: str | None = None) -> None:
        super().__init__(message)
        self.message, self.param, self.code = message, param, code


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _only(value: Mapping[str, Any], names: tuple[str, ...], path: str) -> None:
    for k in value:
        if k not in names:
            raise FilterError(
                f"Unrecognized request argument supplied: {_join(path, k)}",
                _join(path, k),
                "unknown_parameter",
            )


def _scalar(v: Any, *, booleans: bool) -> bool:
    if isinstance(v, bool):
        return booleans
    if isinstance(v, float):
        return math.isfinite(v)
    return isinstance(v, str | int)


def parse(value: Any, path: str = "filters") -> dict[str, Any]:
    """The filter, checked and normalized (only its known keys); FilterError otherwise."""
    if not isinstance(value, dict):
        raise FilterError(type_message(path, "an object", value), path)
    kind = value.get("type")
    if kind in COMPOUNDS:
        _only(value, ("type", "filters"), path)
        subs = value.get("filters")
        if not isinstance(subs, list) or not subs:
            where = _join(path, "filters")
            raise FilterError(f"Invalid '{where}': expected a non-empty array.", where)
        return {"type": kind, "filters": [parse(s, f"{path}.filters[{i}]") for i, s in enumerate(subs)]}
    if kind not in COMPARISONS:
        options = ", ".join(f"'{t}'" for t in (*COMPOUNDS, *COMPARISONS))
        where = _join(path, "type")
        raise FilterError(f"Invalid value for '{where}': expected one of {options}.", where)
    _only(value, ("type", "key", "value"), path)
    key, item = value.get("key"), value.get("value")
    if not isinstance(key, str):
        raise FilterError(type_message(_join(path, "key"), "a string", key), _join(path, "key"))
    where = _join(path, "value")
    if kind in ("in", "nin"):
        if not isinstance(item, list) or not all(_scalar(v, booleans=False) for v in item):
            raise FilterError(type_message(where, "an array of strings or numbers", item), where)
    elif not _scalar(item, booleans=True):
        raise FilterError(type_message(where, "a string, number or boolean", item), where)
    return {"type": kind, "key": key, "value": item}


def _json_key(v: Any) -> tuple[str, Any]:
    # Booleans are their own JSON type; integers and floats are one (numbers).
    return ("bool" if isinstance(v, bool) else "number" if isinstance(v, int | float) else "str", v)


def matches(attributes: Mapping[str, Any], f: Mapping[str, Any]) -> bool:
    """Whether a file with these attributes passes the (parsed) filter `f`."""
    kind = f["type"]
    if kind == "and":
        return all(matches(attributes, sub) for sub in f["filters"])
    if kind == "or":
        return any(matches(attributes, sub) for sub in f["filters"])
    if f["key"] not in attributes:
        return kind in ("ne", "nin")
    actual, expected = _json_key(attributes[f["key"]]), f["value"]
    if kind in ("in", "nin"):
        found = actual in {_json_key(v) for v in expected}
        return found if kind == "in" else not found
    if kind in ("eq", "ne"):
        equal = actual == _json_key(expected)
        return equal if kind == "eq" else not equal
    expected_key = _json_key(expected)
    if actual[0] != expected_key[0] or actual[0] == "bool":
        return False  # ordering across types is undefined: no match rather than an error
    a, e = actual[1], expected_key[1]
    return bool({"gt": a > e, "gte": a >= e, "lt": a < e, "lte": a <= e}[kind])


# The OpenAPI description of a filter (api/request_specs.py publishes it).
COMPARISON_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": list(COMPARISONS)},
        "key": {"type": "string"},
        "value": {
            "anyOf": [
                {"type": "string"},
                {"type": "number"},
                {"type": "boolean"},
                {"type": "array", "items": {"anyOf": [{"type": "string"}, {"type": "number"}]}},
            ]
        },
    },
    "required": ["type", "key", "value"],
    "additionalProperties": False,
}
# As in the SDK: the nested filters are comparisons or (further compound) objects.
COMPOUND_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "type": {"type": "string", "enum": list(COMPOUNDS)},
        "filters": {
            "type": "array",
            "minItems": 1,
            "items": {"anyOf": [COMPARISON_SCHEMA, {"type": "object"}]},
        },
    },
    "required": ["type", "filters"],
    "additionalProperties": False,
}
