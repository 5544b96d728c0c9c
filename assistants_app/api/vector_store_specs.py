"""Request bodies and query strings of the /v1 vector store endpoints (api/vector_stores.py), declared
with validation/'s field types like the rest of request_specs.py."""

from __future__ import annotations

import math
from typing import Any

from assistants_app.api.validation import (
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
    check_json_text,
    list_query,
    type_error,
)
from assistants_app.errors import InvalidRequest
from assistants_app.lib import filters
from assistants_app.models.files import VECTOR_STORE_FILE_STATUSES

from .request_specs import CHUNKING_STRATEGY, ID


class Attributes(Metadata):
    """A vector store file's attributes: up to 16 pairs; keys ≤ 64 characters; values are strings
    (≤ 512), numbers or booleans. They are what search `filters` compare against."""

    KEY_NAME = "attribute keys"

    def check_value(self, item: Any, sub: str) -> None:
        if isinstance(item, str):
            self.check_string(item, sub)
        elif isinstance(item, float) and not math.isfinite(item):
            raise InvalidRequest(f"Invalid '{sub}': not a finite number.", param=sub)
        elif not isinstance(item, bool | int | float):
            raise type_error(sub, "a string, number or boolean", item)

    def value_schema(self) -> dict[str, Any]:
        return {
            "anyOf": [
                {"type": "string", "maxLength": self.MAX_VALUE},
                {"type": "number"},
                {"type": "boolean"},
            ]
        }


class Filter(Field):
    """An attribute filter (lib/filters.py: the grammar file search itself applies)."""

    json_type = "object"

    def check(self, value: Any, path: str) -> dict[str, Any]:
        check_json_text(value, path)
        try:
            return filters.parse(value, path)
        except filters.FilterError as exc:
            raise InvalidRequest(exc.message, param=exc.param, code=exc.code) from None

    def base_schema(self) -> dict[str, Any]:
        return {"anyOf": [filters.COMPARISON_SCHEMA, filters.COMPOUND_SCHEMA]}


_VS_FILE_IDS = Arr(Str(min_len=1, max_len=64), max_items=500)
_EXPIRES_AFTER = Obj({"anchor": Const("last_active_at"), "days": Int(minimum=1, maximum=365, required=True)})

VECTOR_STORE_CREATE = Obj(
    {
        "name": Str(max_len=256),
        "description": Str(max_len=512),
        "file_ids": _VS_FILE_IDS,
        "chunking_strategy": CHUNKING_STRATEGY,
        "expires_after": _EXPIRES_AFTER,
        "metadata": Metadata(),
    }
)
VECTOR_STORE_UPDATE = Obj(
    {
        "name": Str(max_len=256),
        "expires_after": Obj(_EXPIRES_AFTER.fields, description="null removes the expiry policy"),
        "metadata": Metadata(),
    }
)
VECTOR_STORE_FILE_CREATE = Obj(
    {
        "file_id": ID,
        "attributes": Attributes(),
        "chunking_strategy": CHUNKING_STRATEGY,
    }
)
VECTOR_STORE_FILE_UPDATE = Obj(
    {"attributes": Attributes(description="Required; null removes every attribute")}
)
VECTOR_STORE_BATCH_CREATE = Obj(
    {
        "file_ids": Arr(Str(min_len=1, max_len=64), max_items=2000),
        "files": Arr(
            Obj(
                {
                    "file_id": ID,
                    "attributes": Attributes(),
                    "chunking_strategy": CHUNKING_STRATEGY,
                }
            ),
            max_items=2000,
        ),
        "attributes": Attributes(),
        "chunking_strategy": CHUNKING_STRATEGY,
    }
)
_QUERY_TEXT = Str(min_len=1, max_len=4096)
VECTOR_STORE_SEARCH = Obj(
    {
        "query": Either(_QUERY_TEXT, Arr(_QUERY_TEXT, min_items=1, max_items=16), required=True),
        "filters": Filter(),
        "max_num_results": Int(minimum=1, maximum=50, description="Default 10"),
        "ranking_options": Obj(
            {
                # One ranking on this server (lexical, fused with dense when embeddings are configured).
                "ranker": Str(enum=("none", "auto", "default-2024-11-15")),
                "score_threshold": Num(minimum=0, maximum=1),
            }
        ),
        "rewrite_query": Bool(
            description="Let the model rewrite each query into a search query first (needs a model; "
            "the response's search_query holds what was searched)"
        ),
    }
)
VECTOR_STORE_LIST_QUERY = list_query()
VECTOR_STORE_FILE_LIST_QUERY = list_query(
    filter=Str(enum=VECTOR_STORE_FILE_STATUSES, description="Only files with this status")
)
