"""/v1/vector_stores: stores, their files (attach, list, attributes, content), file batches and search.

Request shapes are in vector_store_specs.py, response schemas in response_schemas.py, the use cases in
services/vector_stores.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from django.http import HttpResponseBase, JsonResponse

from assistants_app.errors import InvalidRequest
from assistants_app.models import VectorStore, VectorStoreFile, VectorStoreFileBatch
from assistants_app.serializers import vector_store_file_batch_obj, vector_store_file_obj, vector_store_obj
from assistants_app.services import vector_store_files as vs_files
from assistants_app.services import vector_stores as svc

from . import vector_store_specs
from .pagination import page
from .routing import Ctx, Operation


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
    counts = vs_files.batch_stats(batch)
    return vector_store_file_batch_obj(batch, status=vs_files.batch_status(batch, counts), counts=counts)


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
    return vector_store_file_obj(vs_files.add_file(ctx.user, store, ctx.body))


def file_list(ctx: Ctx, vector_store_id: str) -> dict[str, Any]:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    return _page_by_file_id(
        vs_files.files_of(store, ctx.query.get("filter")), ctx.query, vector_store_file_obj
    )


def file_retrieve(ctx: Ctx, vector_store_id: str, file_id: str) -> HttpResponseBase:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    return _poll_hint(vector_store_file_obj(vs_files.get_vs_file(store, file_id)))


def file_update(ctx: Ctx, vector_store_id: str, file_id: str) -> dict[str, Any]:
    vs_file = vs_files.get_vs_file(svc.get_store(ctx.user, vector_store_id, stats=False), file_id)
    # The SDK makes `attributes` required but nullable: null clears them, leaving it out is an error.
    if "attributes" not in _raw_body(ctx):
        raise InvalidRequest(
            "Missing required parameter: 'attributes'.", param="attributes", code="missing_required_parameter"
        )
    return vector_store_file_obj(vs_files.set_attributes(vs_file, ctx.body.get("attributes")))


def file_delete(ctx: Ctx, vector_store_id: str, file_id: str) -> dict[str, Any]:
    vs_files.remove_file(vs_files.get_vs_file(svc.get_store(ctx.user, vector_store_id, stats=False), file_id))
    return {"id": file_id, "object": "vector_store.file.deleted", "deleted": True}


def file_content(ctx: Ctx, vector_store_id: str, file_id: str) -> dict[str, Any]:
    vs_file = vs_files.get_vs_file(svc.get_store(ctx.user, vector_store_id, stats=False), file_id)
    return {
        "object": "vector_store.file_content.page",
        "data": [{"type": "text", "text": text} for text in vs_files.file_text(vs_file)],
        "has_more": False,
        "next_page": None,
    }


# --- batches ----------------------------------------------------------------------------------------
def batch_create(ctx: Ctx, vector_store_id: str) -> dict[str, Any]:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    return _batch_obj(vs_files.create_batch(ctx.user, store, ctx.body))


def batch_retrieve(ctx: Ctx, vector_store_id: str, batch_id: str) -> HttpResponseBase:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    return _poll_hint(_batch_obj(vs_files.get_batch(store, batch_id)))


def batch_cancel(ctx: Ctx, vector_store_id: str, batch_id: str) -> dict[str, Any]:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    return _batch_obj(vs_files.cancel_batch(vs_files.get_batch(store, batch_id)))


def batch_files(ctx: Ctx, vector_store_id: str, batch_id: str) -> dict[str, Any]:
    store = svc.get_store(ctx.user, vector_store_id, stats=False)
    batch = vs_files.get_batch(store, batch_id)
    return _page_by_file_id(
        vs_files.files_of(store, ctx.query.get("filter"), batch), ctx.query, vector_store_file_obj
    )


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
        body=vector_store_specs.VECTOR_STORE_CREATE,
        tags=T,
    ),
    Operation(
        "GET",
        P,
        list_,
        "listVectorStores",
        "List vector stores",
        "VectorStoreList",
        query=vector_store_specs.VECTOR_STORE_LIST_QUERY,
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
        body=vector_store_specs.VECTOR_STORE_UPDATE,
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
        body=vector_store_specs.VECTOR_STORE_SEARCH,
        tags=T,
    ),
    Operation(
        "POST",
        FILES,
        file_create,
        "createVectorStoreFile",
        "Attach a file to a vector store",
        "VectorStoreFile",
        body=vector_store_specs.VECTOR_STORE_FILE_CREATE,
        tags=T,
    ),
    Operation(
        "GET",
        FILES,
        file_list,
        "listVectorStoreFiles",
        "List a vector store's files",
        "VectorStoreFileList",
        query=vector_store_specs.VECTOR_STORE_FILE_LIST_QUERY,
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
        body=vector_store_specs.VECTOR_STORE_FILE_UPDATE,
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
        body=vector_store_specs.VECTOR_STORE_BATCH_CREATE,
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
        query=vector_store_specs.VECTOR_STORE_FILE_LIST_QUERY,
        tags=T,
    ),
]
