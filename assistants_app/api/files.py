"""/v1/files: multipart upload, list, retrieve, delete, content download."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpResponseBase, StreamingHttpResponse
from django.utils.http import content_disposition_header

from assistants_app.errors import InvalidRequest
from assistants_app.serializers import file_obj
from assistants_app.server.bodies import upload_limit
from assistants_app.services import files, lookups

from . import request_specs
from .errors import PayloadTooLarge
from .pagination import page
from .routing import Ctx, Operation
from .validation import Int, Str

UPLOAD_FIELDS = ("purpose", "expires_after[anchor]", "expires_after[seconds]")
_PURPOSE = Str(enum=request_specs.FILE_PURPOSES, required=True)
_EXPIRES_SECONDS = Int(minimum=3600, maximum=2_592_000)


def _max_bytes() -> int:
    return int(settings.FILE_UPLOAD_MAX_BYTES)


def _too_large() -> PayloadTooLarge:
    return PayloadTooLarge(f"File too large: the limit is {_max_bytes()} bytes.", param="file")


def upload(ctx: Ctx) -> dict[str, Any]:
    request = ctx.request
    if not (request.content_type or "").startswith("multipart/form-data"):
        raise InvalidRequest(
            "Uploads must be sent as multipart/form-data with 'file' and 'purpose'.", param="file"
        )
    # Refuse before parsing when the client says how big the body is.
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > upload_limit():
        raise _too_large()
    form, parts = request.POST, request.FILES
    for key in list(form.keys()) + list(parts.keys()):
        if key not in UPLOAD_FIELDS and key != "file":
            raise InvalidRequest(
                f"Unrecognized request argument supplied: {key}", param=key, code="unknown_parameter"
            )
    upload = parts.get("file")
    if upload is None:
        raise InvalidRequest(
            "Missing required parameter: 'file'.", param="file", code="missing_required_parameter"
        )
    if form.get("purpose") is None:
        raise InvalidRequest(
            "Missing required parameter: 'purpose'.", param="purpose", code="missing_required_parameter"
        )
    purpose = _PURPOSE.check(form.get("purpose"), "purpose")
    if (upload.size or 0) > _max_bytes():
        raise _too_large()
    expires: int | None = None
    anchor, seconds = form.get("expires_after[anchor]"), form.get("expires_after[seconds]")
    if anchor is not None or seconds is not None:
        if anchor != "created_at":
            raise InvalidRequest("expires_after.anchor must be 'created_at'.", param="expires_after.anchor")
        try:
            expires = int(_EXPIRES_SECONDS.check(int(seconds or ""), "expires_after.seconds"))
        except ValueError:
            raise InvalidRequest(
                "expires_after.seconds must be an integer.", param="expires_after.seconds"
            ) from None
    stored = files.store_file(
        ctx.user.pk, upload, filename=upload.name or "", purpose=purpose, expires_after=expires
    )
    return file_obj(stored)


def list_(ctx: Ctx) -> dict[str, Any]:
    qs = lookups.live_files(ctx.user)
    if ctx.query.get("purpose"):
        qs = qs.filter(purpose=ctx.query["purpose"])
    return page(qs, ctx.query, file_obj, default_limit=10_000)


def retrieve(ctx: Ctx, file_id: str) -> dict[str, Any]:
    return file_obj(lookups.get_file(ctx.user, file_id))


def delete(ctx: Ctx, file_id: str) -> dict[str, Any]:
    files.delete_file(lookups.get_file(ctx.user, file_id))
    return {"id": file_id, "object": "file", "deleted": True}


def content(ctx: Ctx, file_id: str) -> HttpResponseBase:
    f = lookups.get_file(ctx.user, file_id)
    handle = f.data.open("rb")

    async def chunks() -> AsyncIterator[bytes]:
        # Read off the event loop: the storage is a blocking file API.
        read = sync_to_async(handle.read, thread_sensitive=False)
        try:
            while chunk := await read(64 * 1024):
                yield chunk
        finally:
            await sync_to_async(handle.close, thread_sensitive=False)()

    response = StreamingHttpResponse(chunks(), content_type=f.content_type or "application/octet-stream")
    response["Content-Length"] = str(f.bytes)
    response["Content-Disposition"] = content_disposition_header(True, f.filename) or "attachment"
    response["X-Content-Type-Options"] = "nosniff"
    return response


T = ("Files",)
OPERATIONS = [
    Operation("POST", "/files", upload, "createFile", "Upload a file", "OpenAIFile", multipart=True, tags=T),
    Operation(
        "GET",
        "/files",
        list_,
        "listFiles",
        "List files",
        "FileList",
        query=request_specs.FILE_LIST_QUERY,
        tags=T,
    ),
    Operation("GET", "/files/{file_id}", retrieve, "retrieveFile", "Retrieve a file", "OpenAIFile", tags=T),
    Operation("DELETE", "/files/{file_id}", delete, "deleteFile", "Delete a file", "FileDeleted", tags=T),
    Operation(
        "GET",
        "/files/{file_id}/content",
        content,
        "downloadFile",
        "Download a file's content",
        "",
        binary=True,
        tags=T,
    ),
]
