from __future__ import annotations

from django.conf import settings
from django.db import models

from assistants_app.ids import IdField, new_file_batch_id, new_file_id, new_vector_store_id


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
    # deleting that thread deletes the file (services_storage). Empty for uploads.
    origin_thread_id = models.CharField(max_length=40, blank=True, default="", db_index=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["owner", "id"], name="file_owner_id_idx")]

    def __str__(self) -> str:
        return f"{self.filename} ({self.id})"


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

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return self.name or self.id


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
