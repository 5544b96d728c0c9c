"""Chunks of extracted file text: the unit that file search indexes and returns.

A chunk belongs to one VectorStoreFile (the same File attached to two vector stores is chunked
once per store, because each attachment may use its own chunking_strategy). `owner` and
`vector_store` are denormalized from the vector store so that every retrieval query can filter
on them directly, without joins, and never cross owners.

The lexical index is not declared here: it lives in the database (migration 0002):
- SQLite: an external-content FTS5 table `assistants_app_chunk_fts` kept in sync by triggers on
  this table (so ORM cascades from File / VectorStore / user deletes also reach the index).
- PostgreSQL: a generated `search_tsv tsvector` column with a GIN index.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models

from .files import File, VectorStore, VectorStoreFile


class Chunk(models.Model):
    id = models.BigAutoField(primary_key=True)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    vector_store = models.ForeignKey(VectorStore, on_delete=models.CASCADE, related_name="chunks")
    vs_file = models.ForeignKey(VectorStoreFile, on_delete=models.CASCADE, related_name="chunks")
    file = models.ForeignKey(File, on_delete=models.CASCADE, related_name="chunks")
    ordinal = models.IntegerField()
    text = models.TextField()
    token_count = models.IntegerField()
    # Character offsets of `text` in the file's extracted text: text == extracted[start:end].
    start_offset = models.IntegerField()
    end_offset = models.IntegerField()
    # float32 little-endian vector, present only when an embeddings endpoint is configured.
    embedding = models.BinaryField(null=True, blank=True)

    class Meta:
        ordering = ["vs_file", "ordinal"]
        constraints = [models.UniqueConstraint(fields=["vs_file", "ordinal"], name="unique_chunk_ordinal")]
        indexes = [models.Index(fields=["owner", "vector_store"], name="chunk_owner_vs_idx")]

    def __str__(self) -> str:
        return f"chunk {self.ordinal} of {self.file_id}"
