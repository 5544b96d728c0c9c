"""The field types of request bodies: each checks a value and writes its own JSON Schema."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from assistants_app.errors import InvalidRequest
from assistants_app.lib.jsontypes import JSON_TYPE_NAMES

from .values import check_json_text, check_text, join, type_error


class Field:
    json_type: str = ""

    def __init__(self, *, required: bool = False, nullable: bool = True, description: str = "") -> None:
        self.required = required
        self.nullable = nullable and not required
        self.description = description

    def check(self, value: Any, path: str) -> Any:
        raise NotImplementedError

    def base_schema(self) -> dict[str, Any]:
        raise NotImplementedError

    def schema(self) -> dict[str, Any]:
        s = self.base_schema()
        if self.description:
            s = {**s, "description": self.description}
        if not self.nullable:
            return s
        if "type" in s and isinstance(s["type"], str) and "enum" not in s:
            return {**s, "type": [s["type"], "null"]}
        return {"anyOf": [s, {"type": "null"}]}

    def validate(self, value: Any, path: str) -> Any:
        if value is None:
            if self.nullable:
                return None
            raise type_error(path, f"{self.expected()}", value)
        return self.check(value, path)

    def expected(self) -> str:
        return JSON_TYPE_NAMES.get(
            {
                "string": str,
                "integer": int,
                "number": float,
                "boolean": bool,
                "array": list,
                "object": dict,
            }.get(self.json_type, object),
            "a value",
        )


class Str(Field):
    json_type = "string"

    def __init__(
        self,
        *,
        max_len: int | None = None,
        min_len: int = 0,
        enum: tuple[str, ...] | None = None,
        pattern: str | None = None,
        **kw: Any,
    ) -> None:
        super().__init__(**kw)
        self.max_len, self.min_len, self.enum, self.pattern = max_len, min_len, enum, pattern

    def check(self, value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise type_error(path, "a string", value)
        check_text(value, path)
        if self.enum is not None and value not in self.enum:
            options = ", ".join(f"'{e}'" for e in self.enum)
            raise InvalidRequest(f"Invalid value for '{path}': expected one of {options}.", param=path)
        if self.max_len is not None and len(value) > self.max_len:
            raise InvalidRequest(
                f"Invalid '{path}': string too long. Expected a string with maximum length {self.max_len}, "
                f"but got a string with length {len(value)} instead.",
                param=path,
                code="string_above_max_length",
            )
        if len(value) < self.min_len:
            raise InvalidRequest(
                f"Invalid '{path}': string too short. Expected a string with minimum length {self.min_len}.",
                param=path,
                code="string_below_min_length",
            )
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise InvalidRequest(f"Invalid '{path}': must match the pattern {self.pattern}.", param=path)
        return value

    def base_schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "string"}
        if self.enum is not None:
            s["enum"] = list(self.enum)
        if self.max_len is not None:
            s["maxLength"] = self.max_len
        if self.min_len:
            s["minLength"] = self.min_len
        if self.pattern is not None:
            s["pattern"] = f"^{self.pattern}$"
        return s


class Const(Str):
    def __init__(self, value: str, **kw: Any) -> None:
        kw.setdefault("required", True)
        super().__init__(enum=(value,), **kw)


class Num(Field):
    json_type = "number"

    def __init__(
        self, *, minimum: float | None = None, maximum: float | None = None, integer: bool = False, **kw: Any
    ) -> None:
        super().__init__(**kw)
        self.minimum, self.maximum, self.integer = minimum, maximum, integer
        if integer:
            self.json_type = "integer"

    def check(self, value: Any, path: str) -> int | float:
        # bool is an int in Python but not in JSON.
        ok = isinstance(value, int) if self.integer else isinstance(value, int | float)
        if isinstance(value, bool) or not ok:
            raise type_error(path, "an integer" if self.integer else "a number", value)
        if isinstance(value, float) and value != value:  # NaN
            raise InvalidRequest(f"Invalid '{path}': not a number.", param=path)
        if self.minimum is not None and value < self.minimum:
            raise InvalidRequest(
                f"Invalid '{path}': expected a value >= {self.minimum}, but got {value} instead.",
                param=path,
                code="decimal_below_min_value" if not self.integer else "integer_below_min_value",
            )
        if self.maximum is not None and value > self.maximum:
            raise InvalidRequest(
                f"Invalid '{path}': expected a value <= {self.maximum}, but got {value} instead.",
                param=path,
                code="decimal_above_max_value" if not self.integer else "integer_above_max_value",
            )
        number: int | float = value
        return number

    def base_schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": self.json_type}
        if self.minimum is not None:
            s["minimum"] = self.minimum
        if self.maximum is not None:
            s["maximum"] = self.maximum
        return s


# Integers land in 32-bit database columns (PostgreSQL `integer`): a bigger one would be a 500.
INT32_MAX = 2**31 - 1


def Int(**kw: Any) -> Num:
    kw.setdefault("maximum", INT32_MAX)
    return Num(integer=True, **kw)


class Bool(Field):
    json_type = "boolean"

    def check(self, value: Any, path: str) -> bool:
        if not isinstance(value, bool):
            raise type_error(path, "a boolean", value)
        return value

    def base_schema(self) -> dict[str, Any]:
        return {"type": "boolean"}


class AnyObject(Field):
    """A free-form JSON object (e.g. a function's JSON Schema `parameters`)."""

    json_type = "object"

    def check(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise type_error(path, "an object", value)
        check_json_text(value, path)
        return value

    def base_schema(self) -> dict[str, Any]:
        return {"type": "object", "additionalProperties": True}


class Metadata(Field):
    """Up to 16 string pairs; keys ≤ 64 characters, values ≤ 512. Non-string values are a 400."""

    json_type = "object"
    MAX_PAIRS, MAX_KEY, MAX_VALUE = 16, 64, 512
    KEY_NAME = "metadata keys"

    def check(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise type_error(path, "an object", value)
        if len(value) > self.MAX_PAIRS:
            raise InvalidRequest(
                f"Invalid '{path}': too many properties. Expected an object with at most {self.MAX_PAIRS} "
                f"properties, but got an object with {len(value)} properties instead.",
                param=path,
                code="object_above_max_properties",
            )
        for key, item in value.items():
            sub = join(path, key)
            check_text(key, sub)
            if len(key) > self.MAX_KEY:
                raise InvalidRequest(
                    f"Invalid '{path}': {self.KEY_NAME} can be at most {self.MAX_KEY} characters long.",
                    param=sub,
                    code="string_above_max_length",
                )
            self.check_value(item, sub)
        return dict(value)

    def check_value(self, item: Any, sub: str) -> None:
        if not isinstance(item, str):
            raise type_error(sub, "a string", item)
        self.check_string(item, sub)

    def check_string(self, item: str, sub: str) -> None:
        check_text(item, sub)
        if len(item) > self.MAX_VALUE:
            raise InvalidRequest(
                f"Invalid '{sub}': string too long. Expected a string with maximum length "
                f"{self.MAX_VALUE}, but got a string with length {len(item)} instead.",
                param=sub,
                code="string_above_max_length",
            )

    def value_schema(self) -> dict[str, Any]:
        return {"type": "string", "maxLength": self.MAX_VALUE}

    def base_schema(self) -> dict[str, Any]:
        return {
            "type": "object",
            "maxProperties": self.MAX_PAIRS,
            "propertyNames": {"maxLength": self.MAX_KEY},
            "additionalProperties": self.value_schema(),
        }


class Arr(Field):
    json_type = "array"

    def __init__(self, item: Field, *, max_items: int | None = None, min_items: int = 0, **kw: Any) -> None:
        super().__init__(**kw)
        self.item, self.max_items, self.min_items = item, max_items, min_items

    def check(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            raise type_error(path, "an array", value)
        if self.max_items is not None and len(value) > self.max_items:
            raise InvalidRequest(
                f"Invalid '{path}': array too long. Expected an array with maximum length {self.max_items}, "
                f"but got an array with length {len(value)} instead.",
                param=path,
                code="array_above_max_length",
            )
        if len(value) < self.min_items:
            raise InvalidRequest(
                f"Invalid '{path}': array too short. Expected at least {self.min_items} item(s).",
                param=path,
                code="array_below_min_length",
            )
        # An item is never "not given": null inside an array is a type error.
        out = []
        for i, v in enumerate(value):
            sub = f"{path}[{i}]"
            if v is None:
                raise type_error(sub, self.item.expected(), v)
            out.append(self.item.check(v, sub))
        return out

    def base_schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {"type": "array", "items": self.item.base_schema()}
        if self.max_items is not None:
            s["maxItems"] = self.max_items
        if self.min_items:
            s["minItems"] = self.min_items
        return s


class Obj(Field):
    """An object with known properties. `check` returns only the keys that were given and not null."""

    json_type = "object"

    def __init__(self, fields: Mapping[str, Field], **kw: Any) -> None:
        super().__init__(**kw)
        self.fields = dict(fields)

    def check(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise type_error(path or "body", "an object", value)
        unknown = [k for k in value if k not in self.fields]
        if unknown:
            raise InvalidRequest(
                f"Unrecognized request argument supplied: {join(path, unknown[0])}"
                + (f" (and {', '.join(join(path, k) for k in unknown[1:])})" if len(unknown) > 1 else ""),
                param=join(path, unknown[0]),
                code="unknown_parameter",
            )
        out: dict[str, Any] = {}
        for name, field in self.fields.items():
            sub = join(path, name)
            if name not in value:
                if field.required:
                    raise InvalidRequest(
                        f"Missing required parameter: '{sub}'.", param=sub, code="missing_required_parameter"
                    )
                continue
            checked = field.validate(value[name], sub)
            if checked is not None:
                out[name] = checked
        return out

    def base_schema(self) -> dict[str, Any]:
        s: dict[str, Any] = {
            "type": "object",
            "properties": {k: f.schema() for k, f in self.fields.items()},
            "additionalProperties": False,
        }
        required = [k for k, f in self.fields.items() if f.required]
        if required:
            s["required"] = required
        return s


class Tagged(Field):
    """A union of objects told apart by their `type` property."""

    json_type = "object"

    def __init__(self, variants: Mapping[str, Obj], **kw: Any) -> None:
        super().__init__(**kw)
        self.variants = dict(variants)

    def check(self, value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise type_error(path, "an object", value)
        tag = value.get("type")
        variant = self.variants.get(tag) if isinstance(tag, str) else None
        if variant is None:
            options = ", ".join(f"'{t}'" for t in self.variants)
            raise InvalidRequest(
                f"Invalid value for '{join(path, 'type')}': expected one of {options}.",
                param=join(path, "type"),
            )
        return variant.check(value, path)

    def base_schema(self) -> dict[str, Any]:
        return {"oneOf": [v.base_schema() for v in self.variants.values()]}


class Either(Field):
    """A value that is either a string (from a fixed set, or any) or an object (e.g. tool_choice)."""

    def __init__(self, string: Str, other: Field, **kw: Any) -> None:
        super().__init__(**kw)
        self.string, self.other = string, other

    def check(self, value: Any, path: str) -> Any:
        if isinstance(value, str):
            return self.string.check(value, path)
        if self.other.json_type and not isinstance(value, dict if self.other.json_type == "object" else list):
            raise type_error(path, f"a string or {self.other.expected()}", value)
        return self.other.check(value, path)

    def expected(self) -> str:
        return f"a string or {self.other.expected()}"

    def base_schema(self) -> dict[str, Any]:
        return {"anyOf": [self.string.base_schema(), self.other.base_schema()]}
