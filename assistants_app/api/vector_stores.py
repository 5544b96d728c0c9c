"""/v1/vector_stores: stores, their files (attach, list, attributes, content), file batches and search.

Request shapes are declared here (params.py types, so the OpenAPI document publishes exactly what is
enforced), the response schemas too (merged into the document by openapi.py); the use cases live in
services/vector_stores.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponseBase, JsonResponse

from assistants_app.errors import InvalidRequest
from assistants_app.lib import filters
from assistants_app.models import VectorStore, VectorStoreFile, VectorStoreFileBatch
from assistants_app.objects import vector_store_file_batch_obj, vector_store_file_obj, vector_store_obj
from assistants_app.services import vector_stores as svc

from . import specs
from .pagination import page
from .params import (
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
    _type_error,
    check_json_text,
    list_query,
)
from .routing import Ctx, Operation
from .schemas import BOOL, INT, METADATA, NUM, STR, TS, deleted, listing, nullable, obj


# --- request fields ---------------------------------------------------------------------------------
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
            raise _type_error(sub, "a string, number or boolean", item)

    def value_schema(self) -> dict[str, Any]:
        return {"anyOf": [{"type": "string", "maxLength": self.MAX_VALUE}, NUM, BOOL]}


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


STATUSES = svc.STATUSES
FILE_IDS = Arr(Str(min_len=1, max_len=64), max_items=500)
EXPIRES_AFTER = Obj({"anchor": Const("last_active_at"), "days": Int(minimum=1, maximum=365, required=True)})

STORE_CREATE = Obj(
    {
        "name": Str(max_len=256),
        "description": Str(max_len=512),
        "file_ids": FILE_IDS,
        "chunking_strategy": specs.CHUNKING_STRATEGY,
        "expires_after": EXPIRES_AFTER,
        "metadata": Metadata(),
    }
)
STORE_UPDATE = Obj(
    {
        "name": Str(max_len=256),
        "expires_after": Obj(EXPIRES_AFTER.fields, description="null removes the expiry policy"),
        "metadata": Metadata(),
    }
)
FILE_CREATE = Obj(
    {"file_id": specs.ID, "attributes": Attributes(), "chunking_strategy": specs.CHUNKING_STRATEGY}
)
FILE_UPDATE = Obj({"attributes": Attributes(description="Required; null removes every attribute")})
BATCH_CREATE = Obj(
    {
        "file_ids": Arr(Str(min_len=1, max_len=64), max_items=2000),
        "files": Arr(
            Obj(
                {
                    "file_id": specs.ID,
                    "attributes": Attributes(),
                    "chunking_strategy": specs.CHUNKING_STRATEGY,
                }
            ),
            max_items=2000,
        ),
        "attributes": Attributes(),
        "chunking_strategy": specs.CHUNKING_STRATEGY,
    }
)
QUERY_TEXT = Str(min_len=1, max_len=4096)
SEARCH = Obj(
    {
        "query": Either(QUERY_TEXT, Arr(QUERY_TEXT, min_items=1, max_items=16), required=True),
        "filters": Filter(),
        "max_num_results": Int(minimum=1, maximum=50, description="Default 10"),
        "ranking_options": Obj(
            {
                # One ranking on this server (lexical, fused with dense when embeddings are configured).
                "ranker": Str(enum=("none", "auto", "default-2024-11-15")),
                "score_threshold": Num(minimum=0, maximum=1),
            }
        ),
        "rewrite_query": Bool(description="Only false: query rewriting is not supported"),
    }
)
STORE_LIST_QUERY = list_query()
FILE_LIST_QUERY = list_query(filter=Str(enum=STATUSES, description="Only files with this status"))


# --- helpers ----------------------------------------------------------------------------------------
def _raw_body(ctx: Ctx) -> dict[str, Any]:
    """The JSON body before validation, which drops nulls: for the fields where null means "remove"."""
    try:
        raw = json.loads(ctx.request.body or b"{}")
    except ValueError:
        return {}
    return raw if isinstance(raw, dict) else {}


def _poll_hint(body: dict[str, Any]) -> JsonResponse:
    response = JsonResponse(body)
    # The SDK's poll helpers wait this long between GETs (instead of their 1 s default).
    response["openai-poll-after-ms"] = str(settings.POLL_AFTER_MS)
    return response


def _page_by_file_id(
    qs: QuerySet[VectorStoreFile], query: dict[str, Any], render: Callable[[VectorStoreFile], dict[str, Any]]
) -> dict[str, Any]:
    """pagination.page for vector store files, whose API id is their file's id.

    They are listed in the order of those ids (file ids sort by creation, see ids.py), so a cursor
    stays valid even when its file was detached between two pages.
    """
    return page(qs, query, render, key="file_id")


def _store_obj(store: VectorStore) -> dict[str, Any]:
    stats = svc.stats_of(store)
    return vector_store_obj(
        store, status=svc.store_status(store, stats), counts=stats.counts, usage_bytes=stats.usage_bytes
    )


def _batch_obj(batch: VectorStoreFileBatch) -> dict[str, Any]:
    counts = svc.batch_stats(batch)
    return vector_store_file_batch_obj(batch, status=svc.batch_status(batch, counts), counts=counts)


# --- stores -----------------------------------------------------------------------------------------
def create(ctx: Ctx) -> dict[str, Any]:
    return _store_obj(svc.create_store(ctx.user, ctx.body))


def list_(ctx: Ctx) -> dict[str, Any]:
    return page(svc.stores_of(ctx.user), ctx.query, _store_obj)


def retrieve(ctx: Ctx, vector_store_id: str) -> dict[str, Any]:
    return _store_obj(svc.get_store(ctx.user, vector_store_id))


def update(ctx: Ctx, vector_store_id: str) -> dict[str, Any]:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    clear = "expires_after" in (raw := _raw_body(ctx)) and raw["expires_after"] is None
    return _store_obj(svc.update_store(store, ctx.body, clear_expiry=clear))


def delete(ctx: Ctx, vector_store_id: str) -> dict[str, Any]:
    svc.delete_store(svc.get_store(ctx.user, vector_store_id, stats=False))
    return {"id": vector_store_id, "object": "vector_store.deleted", "deleted": True}


def search(ctx: Ctx, vector_store_id: str) -> dict[str, Any]:
    return svc.search(svc.get_store(ctx.user, vector_store_id, stats=False), ctx.body)


# --- files ------------------------------------------------------------------------------------------
def file_create(ctx: Ctx, vector_store_id: str) -> dict[str, Any]:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    return vector_store_file_obj(svc.add_file(ctx.user, store, ctx.body))


def file_list(ctx: Ctx, vector_store_id: str) -> dict[str, Any]:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    return _page_by_file_id(svc.files_of(store, ctx.query.get("filter")), ctx.query, vector_store_file_obj)


def file_retrieve(ctx: Ctx, vector_store_id: str, file_id: str) -> HttpResponseBase:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    return _poll_hint(vector_store_file_obj(svc.get_vs_file(store, file_id)))


def file_update(ctx: Ctx, vector_store_id: str, file_id: str) -> dict[str, Any]:
    vs_file = svc.get_vs_file(svc.get_store(ctx.user, vector_store_id, stats=False), file_id)
    # The SDK makes `attributes` required but nullable: null clears them, leaving it out is an error.
    if "attributes" not in _raw_body(ctx):
        raise InvalidRequest(
            "Missing required parameter: 'attributes'.", param="attributes", code="missing_required_parameter"
        )
    return vector_store_file_obj(svc.set_attributes(vs_file, ctx.body.get("attributes")))


def file_delete(ctx: Ctx, vector_store_id: str, file_id: str) -> dict[str, Any]:
    svc.remove_file(svc.get_vs_file(svc.get_store(ctx.user, vector_store_id, stats=False), file_id))
    return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}


def file_content(ctx: Ctx, vector_store_id: str, file_id: str) -> dict[str, Any]:
    vs_file = svc.get_vs_file(svc.get_store(ctx.user, vector_store_id, stats=False), file_id)
    return {
        "object": "vector_store.file_content.page",
        "data": [{"type": "text", "text": text} for text in svc.file_text(vs_file)],
        "has_more": False,
        "next_page": None,
    }


# --- batches ----------------------------------------------------------------------------------------
def batch_create(ctx: Ctx, vector_store_id: str) -> dict[str, Any]:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    return _batch_obj(svc.create_batch(ctx.user, store, ctx.body))


def batch_retrieve(ctx: Ctx, vector_store_id: str, batch_id: str) -> HttpResponseBase:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    return _poll_hint(_batch_obj(svc.get_batch(store, batch_id)))


def batch_cancel(ctx: Ctx, vector_store_id: str, batch_id: str) -> dict[str, Any]:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    return _batch_obj(svc.cancel_batch(svc.get_batch(store, batch_id)))


def batch_files(ctx: Ctx, vector_store_id: str, batch_id: str) -> dict[str, Any]:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    batch = svc.get_batch(store, batch_id)
    return _page_by_file_id(
        svc.files_of(store, ctx.query.get("filter"), batch), ctx.query, vector_store_file_obj
    )


# --- response schemas (openapi.py merges them into the document's components) ----------------------
FILE_COUNTS = obj(
    {"in_progress": INT, "completed": INT, "failed": INT, "cancelled": INT, "total": INT}, closed=True
)
STATIC_CHUNKING = obj(
    {
        "type": {"type": "string", "enum": ["static"]},
        "static": obj({"max_chunk_size_tokens": INT, "chunk_overlap_tokens": INT}, closed=True),
    },
    closed=True,
)
TEXT_PART = obj({"type": {"type": "string", "enum": ["text"]}, "text": STR}, closed=True)
ATTRIBUTES = {"type": "object", "additionalProperties": {"anyOf": [STR, NUM, BOOL]}}


def _unpaged(object_name: str, item: dict[str, Any], extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return obj(
        {
            "object": {"type": "string", "enum": [object_name]},
            **(extra or {}),
            "data": {"type": "array", "items": item},
            "has_more": BOOL,
            "next_page": nullable(STR),
        },
        closed=True,
    )


COMPONENTS: dict[str, dict[str, Any]] = {
    "VectorStore": obj(
        {
            "id": STR,
            "created_at": TS,
            "name": STR,
            "usage_bytes": INT,
            "file_counts": FILE_COUNTS,
            "status": {"type": "string", "enum": ["expired", "in_progress", "completed"]},
            "expires_after": nullable(
                obj({"anchor": {"type": "string", "enum": ["last_active_at"]}, "days": INT}, closed=True)
            ),
            "expires_at": nullable(TS),
            "last_active_at": nullable(TS),
            "metadata": METADATA,
        },
        object_name="vector_store",
    ),
    "VectorStoreFile": obj(
        {
            "id": STR,
            "created_at": TS,
            "vector_store_id": STR,
            "status": {"type": "string", "enum": list(STATUSES)},
            "last_error": nullable(
                obj(
                    {
                        "code": {
                            "type": "string",
                            "enum": ["server_error", "unsupported_file", "invalid_file"],
                        },
                        "message": STR,
                    },
                    closed=True,
                )
            ),
            "usage_bytes": INT,
            "attributes": ATTRIBUTES,
            "chunking_strategy": STATIC_CHUNKING,
        },
        object_name="vector_store.file",
    ),
    "VectorStoreFileBatch": obj(
        {
            "id": STR,
            "created_at": TS,
            "vector_store_id": STR,
            "status": {"type": "string", "enum": ["in_progress", "completed", "cancelled", "failed"]},
            "file_counts": FILE_COUNTS,
        },
        object_name="vector_store.files_batch",
    ),
    "VectorStoreFileContent": _unpaged("vector_store.file_content.page", TEXT_PART),
    "VectorStoreSearchResults": _unpaged(
        "vector_store.search_results.page",
        obj(
            {
                "file_id": STR,
                "filename": STR,
                "score": NUM,
                "attributes": ATTRIBUTES,
                "content": {"type": "array", "items": TEXT_PART},
            },
            closed=True,
        ),
        {"search_query": {"type": "array", "items": STR}},
    ),
    "VectorStoreDeleted": deleted("vector_store.deleted"),
    "VectorStoreFileDeleted": deleted("vector_store.file.deleted"),
    "VectorStoreList": listing("VectorStore"),
    "VectorStoreFileList": listing("VectorStoreFile"),
}

# --- operations -------------------------------------------------------------------------------------
P = "/vector_stores"
ITEM = P + "/{vector_store_id}"
FILES = ITEM + "/files"
FILE = FILES + "/{file_id}"
BATCHES = ITEM + "/file_batches"
BATCH = BATCHES + "/{batch_id}"
T = ("Vector stores",)
OPERATIONS = [
    Operation(
        "POST",
        P,
        create,
        "createVectorStore",
        "Create a vector store",
        "VectorStore",
        body=STORE_CREATE,
        tags=T,
    ),
    Operation(
        "GET",
        P,
        list_,
        "listVectorStores",
        "List vector stores",
        "VectorStoreList",
        query=STORE_LIST_QUERY,
        tags=T,
    ),
    Operation("GET", ITEM, retrieve, "getVectorStore", "Retrieve a vector store", "VectorStore", tags=T),
    Operation(
        "POST",
        ITEM,
        update,
        "modifyVectorStore",
        "Modify a vector store",
        "VectorStore",
        body=STORE_UPDATE,
        tags=T,
    ),
    Operation(
        "DELETE",
        ITEM,
        delete,
        "deleteVectorStore",
        "Delete a vector store (and its chunks)",
        "VectorStoreDeleted",
        tags=T,
    ),
    Operation(
        "POST",
        ITEM + "/search",
        search,
        "searchVectorStore",
        "Search a vector store",
        "VectorStoreSearchResults",
        body=SEARCH,
        tags=T,
    ),
    Operation(
        "POST",
        FILES,
        file_create,
        "createVectorStoreFile",
        "Attach a file to a vector store",
        "VectorStoreFile",
        body=FILE_CREATE,
        tags=T,
    ),
    Operation(
        "GET",
        FILES,
        file_list,
        "listVectorStoreFiles",
        "List a vector store's files",
        "VectorStoreFileList",
        query=FILE_LIST_QUERY,
        tags=T,
    ),
    Operation(
        "GET",
        FILE,
        file_retrieve,
        "getVectorStoreFile",
        "Retrieve a vector store file",
        "VectorStoreFile",
        headers=("openai-poll-after-ms",),
        tags=T,
    ),
    Operation(
        "POST",
        FILE,
        file_update,
        "updateVectorStoreFileAttributes",
        "Update a vector store file's attributes",
        "VectorStoreFile",
        body=FILE_UPDATE,
        tags=T,
    ),
    Operation(
        "DELETE",
        FILE,
        file_delete,
        "deleteVectorStoreFile",
        "Detach a file from a vector store (the file stays)",
        "VectorStoreFileDeleted",
        tags=T,
    ),
    Operation(
        "GET",
        FILE + "/content",
        file_content,
        "retrieveVectorStoreFileContent",
        "A vector store file's parsed text",
        "VectorStoreFileContent",
        tags=T,
    ),
    Operation(
        "POST",
        BATCHES,
        batch_create,
        "createVectorStoreFileBatch",
        "Attach files to a vector store as a batch",
        "VectorStoreFileBatch",
        body=BATCH_CREATE,
        tags=T,
    ),
    Operation(
        "GET",
        BATCH,
        batch_retrieve,
        "getVectorStoreFileBatch",
        "Retrieve a vector store file batch",
        "VectorStoreFileBatch",
        headers=("openai-poll-after-ms",),
        tags=T,
    ),
    Operation(
        "POST",
        BATCH + "/cancel",
        batch_cancel,
        "cancelVectorStoreFileBatch",
        "Cancel a vector store file batch",
        "VectorStoreFileBatch",
        tags=T,
    ),
    Operation(
        "GET",
        BATCH + "/files",
        batch_files,
        "listFilesInVectorStoreBatch",
        "List the files of a batch",
        "VectorStoreFileList",
        query=FILE_LIST_QUERY,
        tags=T,
    ),
]
