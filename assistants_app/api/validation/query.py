"""Query strings: strings on the wire, converted and checked like body fields."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from assistants_app.errors import InvalidRequest

from .fields import Bool, Field, Int, Num, Str


class Query:
    """Query-string parameters: strings on the wire, converted and checked like body fields."""

    def __init__(self, fields: Mapping[str, Field], *, arrays: tuple[str, ...] = ()) -> None:
        self.fields = dict(fields)
        # Names sent as repeated `name[]=…` (the SDK's bracket encoding), e.g. include[].
        self.arrays = arrays

    def check(self, query: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key in query.keys():
            name = key[:-2] if key.endswith("[]") else key
            if name not in self.fields or (key.endswith("[]") != (name in self.arrays)):
                raise InvalidRequest(
                    f"Unrecognized query parameter: {key}", param=key, code="unknown_parameter"
                )
        for name, field in self.fields.items():
            if name in self.arrays:
                values = query.getlist(f"{name}[]")
                if values:
                    out[name] = field.check(values, name)
                continue
            raw = query.get(name)
            if raw is None:
                if field.required:
                    raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name)
                continue
            out[name] = field.check(_convert(field, raw, name), name)
        return out

    def parameters(self) -> list[dict[str, Any]]:
        params = []
        for name, field in self.fields.items():
            params.append(
                {
                    "name": f"{name}[]" if name in self.arrays else name,
                    "in": "query",
                    "required": field.required,
                    "schema": field.base_schema(),
                    **({"description": field.description} if field.description else {}),
                }
            )
        return params


def _convert(field: Field, raw: str, name: str) -> Any:
    if isinstance(field, Num):
        try:
            return int(raw) if field.integer else float(raw)
        except ValueError:
            raise InvalidRequest(
                f"Invalid '{name}': expected {'an integer' if field.integer else 'a number'}, got '{raw[:40]}'.",
                param=name,
            ) from None
    if isinstance(field, Bool):
        if raw not in ("true", "false"):
            raise InvalidRequest(f"Invalid '{name}': expected true or false.", param=name)
        return raw == "true"
    return raw


def list_query(
    *, max_limit: int = 100, default_limit: int = 20, before: bool = True, **extra: Field
) -> Query:
    fields: dict[str, Field] = {
        "limit": Int(minimum=1, maximum=max_limit, description=f"1 to {max_limit}, default {default_limit}"),
        "order": Str(enum=("asc", "desc"), description="Sort by created_at; default desc"),
        "after": Str(max_len=64, description="A cursor: the id of the last object of the previous page"),
    }
    if before:
        fields["before"] = Str(
            max_len=64, description="A cursor: the id of the first object of the next page"
        )
    fields.update(extra)
    return Query(fields)
