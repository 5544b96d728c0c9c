"""Naming a JSON value's type in error messages ("expected an array, but got a string instead")."""

from __future__ import annotations

from typing import Any

JSON_TYPE_NAMES: dict[type, str] = {
    bool: "a boolean",
    int: "an integer",
    float: "a number",
    str: "a string",
    list: "an array",
    dict: "an object",
    type(None): "null",
}


def kind(value: Any) -> str:
    return JSON_TYPE_NAMES.get(type(value), type(value).__name__)


def type_message(path: str, expected: str, value: Any) -> str:
    return f"Invalid type for '{path}': expected {expected}, but got {kind(value)} instead."
