"""Files, vector stores and their files: read-only, plus re-indexing."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from assistants_app.models import File, VectorStore, VectorStoreFile
from assistants_app.services import vector_store_files

from .common import ReadOnlyAdmin, admin_link, changelist_link, error_message, pretty_json


@admin.register(File)
class FileAdmin(ReadOnlyAdmin[File]):
    list_display = ("id", "filename", "owner", "purpose", "bytes", "content_type", "created_at", "expires_at")
    list_filter = ("purpose",)
    search_fields = ("id", "filename", "owner__username", "sha256")
    list_select_related = ("owner",)
    fields = (
        "id",
        "filename",
        "owner",
        "purpose",
        "bytes",
        "sha256",
        "content_type",
        "created_at",
        "expires_at",
        "vector_stores",
    )
    readonly_fields = fields

    @admin.display(description="in vector stores")
    def vector_stores(self, obj: File) -> SafeString:
        return changelist_link(VectorStoreFile, "attachments", file__id__exact=obj.id)


class VectorStoreFileInline(admin.TabularInline[VectorStoreFile, VectorStore]):
    model = VectorStoreFile
    fields = ("file_link", "status", "chunk_count", "usage_bytes", "attempts", "error", "created_at")
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    show_change_link = True
    ordering = ("-id",)

    def has_add_permission(self, request: HttpRequest, obj: VectorStore | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: VectorStore | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: VectorStore | None = None) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[VectorStoreFile]:
        return super().get_queryset(request).select_related("file")

    @admin.display(description="file")
    def file_link(self, obj: VectorStoreFile) -> SafeString | str:
        return admin_link(obj.file, obj.file.filename)

    @admin.display(description="last error")
    def error(self, obj: VectorStoreFile) -> str:
        return error_message(obj.last_error) or "-"


@admin.register(VectorStore)
class VectorStoreAdmin(ReadOnlyAdmin[VectorStore]):
    list_display = ("id", "name", "owner", "file_count", "created_at", "last_active_at")
    search_fields = ("id", "name", "owner__username")
    list_select_related = ("owner",)
    fields = (
        "id",
        "name",
        "description",
        "owner",
        "created_at",
        "last_active_at",
        "expires_at",
        "metadata_display",
    )
    readonly_fields = fields
    inlines = (VectorStoreFileInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[VectorStore]:
        return super().get_queryset(request).annotate(_file_count=Count("vs_files"))

    @admin.display(description="files", ordering="_file_count")
    def file_count(self, obj: VectorStore) -> int:
        return int(obj._file_count)  # type: ignore[attr-defined]

    @admin.display(description="metadata")
    def metadata_display(self, obj: VectorStore) -> SafeString | str:
        return pretty_json(obj.metadata)


@admin.register(VectorStoreFile)
class VectorStoreFileAdmin(ReadOnlyAdmin[VectorStoreFile]):
    list_display = (
        "id",
        "filename",
        "vector_store",
        "status",
        "chunk_count",
        "usage_bytes",
        "attempts",
        "error",
        "created_at",
    )
    list_filter = ("status",)
    search_fields = ("file__id", "file__filename", "vector_store__id", "vector_store__name")
    list_select_related = ("file", "vector_store")
    actions = ("reindex_selected",)
    fields = (
        "id",
        "file_link",
        "vector_store_link",
        "status",
        "chunk_count",
        "usage_bytes",
        "attempts",
        "last_error_display",
        "chunking_strategy_display",
        "attributes_display",
        "claimed_by",
        "claim_expires_at",
        "created_at",
    )
    readonly_fields = fields

    def has_reindex_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("assistants_app.change_vectorstorefile")

    @admin.action(description="Re-index selected files", permissions=["reindex"])
    def reindex_selected(self, request: HttpRequest, queryset: QuerySet[VectorStoreFile]) -> None:
        # Off the request path: only queue them; the executor's ingestion loop does the work.
        count = vector_store_files.requeue(queryset)
        self.message_user(request, f"Queued {count} file(s) for re-indexing.", messages.SUCCESS)

    @admin.display(description="file", ordering="file__filename")
    def filename(self, obj: VectorStoreFile) -> str:
        return obj.file.filename

    @admin.display(description="last error")
    def error(self, obj: VectorStoreFile) -> str:
        return error_message(obj.last_error)[:120] or "-"

    @admin.display(description="file")
    def file_link(self, obj: VectorStoreFile) -> SafeString | str:
        return admin_link(obj.file, obj.file.filename)

    @admin.display(description="vector store")
    def vector_store_link(self, obj: VectorStoreFile) -> SafeString | str:
        return admin_link(obj.vector_store)

    @admin.display(description="last error")
    def last_error_display(self, obj: VectorStoreFile) -> SafeString | str:
        return pretty_json(obj.last_error)

    @admin.display(description="chunking strategy")
    def chunking_strategy_display(self, obj: VectorStoreFile) -> SafeString | str:
        return pretty_json(obj.chunking_strategy)

    @admin.display(description="attributes")
    def attributes_display(self, obj: VectorStoreFile) -> SafeString | str:
        return pretty_json(obj.attributes)
