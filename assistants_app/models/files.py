from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from assistants_app.ids import IdField, new_file_batch_id, new_file_id, new_vector_store_id

# Searching bumps a store's last_active_at (and so pushes expires_at out); more often than this would
# make every search a write.
TOUCH_EVERY = timedelta(seconds=60)


def _unexpired(now: datetime | None = None) -> Q:
    return Q(expires_at__isnull=True) | Q(expires_at__gt=now or timezone.now())


class FileQuerySet(models.QuerySet["File"]):
    def live(self) -> FileQuerySet:
        """Files not past their expires_after. An expired file is gone for every caller (the API,
        message attachments, tool resources, the code interpreter), even before anything purges it."""
        return self.filter(_unexpired())


def file_upload_path(instance: File, filename: str) -> str:
    # Never trust the client's filename for the storage path.
    return f"files/{instance.owner_id}/{instance.id}"


class File(models.Model):
    id = IdField(default=new_file_id)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="files")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    filename = models.CharField(max_length=255)
    purpose = models.CharField(max_length=32)
    bytes = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, default="", db_index=True)
    content_type = models.CharField(max_length=100, blank=True, default="")
    data = models.FileField(upload_to=file_upload_path, max_length=255)
    # The thread whose code-interpreter execution wrote this file (purpose "assistants_output"):
    # deleting that thread deletes the file (services/files.py). Empty for uploads.
    origin_thread_id = models.CharField(max_length=40, blank=True, default="", db_index=True)

    objects = FileQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["owner", "id"], name="file_owner_id_idx")]

    def __str__(self) -> str:
        return f"{self.filename} ({self.id})"


def store_expiry(expires_after: dict[str, Any] | None, anchor: datetime) -> datetime | None:
    """When a store with this `expires_after` policy expires, counted from `anchor`."""
    return anchor + timedelta(days=int(expires_after["days"])) if expires_after else None


class VectorStoreQuerySet(models.QuerySet["VectorStore"]):
    def live(self) -> VectorStoreQuerySet:
        return self.filter(_unexpired())

    def touch(self, store_ids: Iterable[str]) -> None:
        """Mark stores as used (a search, a file added, a run's file search): last_active_at, expires_at.

        Expired stores are left alone; writes happen at most once per TOUCH_EVERY per store.
        """
        now = timezone.now()
        stale = self.filter(id__in=list(store_ids)).filter(
            Q(last_active_at__isnull=True) | Q(last_active_at__lt=now - TOUCH_EVERY), _unexpired(now)
        )
        for store_id, expires_after in stale.values_list("id", "expires_after"):
            self.filter(id=store_id).update(last_active_at=now, expires_at=store_expiry(expires_after, now))


class VectorStore(models.Model):
    id = IdField(default=new_vector_store_id)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="vector_stores"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    name = models.CharField(max_length=256, blank=True, default="")
    description = models.CharField(max_length=512, blank=True, default="")
    metadata = models.JSONField(default=dict, blank=True)
    expires_after = models.JSONField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    last_active_at = models.DateTimeField(null=True, blank=True)

    objects = VectorStoreQuerySet.as_manager()

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name or self.id

    def is_expired(self, now: datetime | None = None) -> bool:
        return self.expires_at is not None and self.expires_at <= (now or timezone.now())


# A vector store file's statuses in the order the API reports counts of them (file_counts).
VECTOR_STORE_FILE_STATUSES = ("in_progress", "completed", "failed", "cancelled")


class VectorStoreFile(models.Model):
    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        CANCELLED = "cancelled"
        FAILED = "failed"

    vector_store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="vs_files")
    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="vs_files")
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.IN_PROGRESS)
    last_error = models.JSONField(null=True, blank=True)
    usage_bytes = models.BigIntegerField(default=0)
    chunking_strategy = models.JSONField(default=dict, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    chunk_count = models.IntegerField(default=0)
    batch = models.ForeignKey(
        "VectorStoreFileBatch", null=True, blank=True, on_delete=models.SET_NULL, related_name="vs_files"
    )
    # Ingestion lease (tools/file_search/ingest.py): a worker owns the row while claimed_by is its
    # id and claim_expires_at is in the future; a killed worker's claim simply expires.
    claimed_by = models.CharField(max_length=100, blank=True, default="")
    claim_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.IntegerField(default=0)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["vector_store", "file"], name="unique_vs_file")]
        indexes = [models.Index(fields=["status", "claim_expires_at"], name="vsfile_pending_idx")]

    def __str__(self) -> str:
        return f"{self.file_id} in {self.vector_store_id}"


class VectorStoreFileBatch(models.Model):
    id = IdField(default=new_file_batch_id)
    vector_store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="batches")
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(max_length=20, default="in_progress")

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.id
