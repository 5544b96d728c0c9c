"""Stored files: the one writer of File rows, each user's quota, and what deletions remove from disk.

Shared by the API (/v1/files), the chat page's attachments, the admin's retrieval uploads and the
code interpreter's output files:

- `store_file` is the only code that creates File rows. It reads the content once for its size,
  sha256 and first bytes; the content type is sniffed from those bytes (lib/sniff.py), never taken
  from the client; the client's filename is kept only as a display name (the storage path is
  models.files.file_upload_path: owner id / file id).
- The blob and row are stored only while the owner's total stays within USER_STORAGE_QUOTA_BYTES.
  The check and the insert run in one transaction that first locks the owner's user row (SELECT ...
  FOR UPDATE; SQLite transactions here are IMMEDIATE, so writers are serialised anyway), so two
  concurrent uploads cannot both squeeze under the limit.
- Deleting a thread removes the output files its executions produced (File.origin_thread_id);
  deleting a user cascades to their threads and files, and every File row deleted, by any path,
  takes its blob with it. These run from model signals, so the API, the chat page, the admin and a
  user's deletion all get them without calling anything. (The thread's code-interpreter Python
  session and working directory go the same way: tools/code_interpreter/cleanup.py.)
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Sum
from django.db.models.signals import post_delete, pre_delete
from django.utils import timezone

from assistants_app.errors import ServiceError
from assistants_app.lib import rowlock
from assistants_app.lib.sniff import SNIFF_BYTES, sniff_content_type
from assistants_app.models import File, Thread

log = logging.getLogger(__name__)
OUTPUT_PURPOSE = "assistants_output"


class StorageQuotaExceeded(ServiceError):
    """413 with code `storage_quota_exceeded`: the request is too large for what is left."""

    status = 413

    def __init__(self, *, used: int, quota: int, size: int, param: str | None = "file") -> None:
        super().__init__(
            f"Storage quota exceeded: you are using {_human(used)} of your {_human(quota)}, and this "
            f"file needs {_human(size)}. Delete files you no longer need and try again.",
            param=param,
            code="storage_quota_exceeded",
        )
        self.used, self.quota, self.size = used, quota, size


def quota_bytes() -> int:
    """0 means unlimited."""
    return int(settings.USER_STORAGE_QUOTA_BYTES)


def used_bytes(user_id: Any) -> int:
    return int(File.objects.filter(owner_id=user_id).aggregate(n=Sum("bytes"))["n"] or 0)


def check_quota(user_id: Any, size: int) -> None:
    """Raise StorageQuotaExceeded if `size` more bytes would not fit (no lock: store_file checks
    again under the lock; callers use this to refuse several files before storing any)."""
    quota = quota_bytes()
    # Nothing to store (a message without files): nothing to refuse, and no SUM query per send.
    if quota and size > 0:
        used = used_bytes(user_id)
        if used + size > quota:
            raise StorageQuotaExceeded(used=used, quota=quota, size=size)


def display_name(name: str) -> str:
    """The client's filename as shown back to it: its last path part, printable, at most 255 long."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    return name[:255] or "upload"


def store_file(
    owner_id: Any,
    content: Any,
    *,
    filename: str,
    purpose: str,
    expires_after: int | None = None,
    origin_thread_id: str = "",
) -> File:
    """Store `content` (a Django File/UploadedFile/ContentFile) as a new File of `owner_id`.

    Raises StorageQuotaExceeded (nothing is left on disk) when it does not fit in the owner's quota.
    """
    sha = hashlib.sha256()
    size = 0
    head = b""
    for chunk in content.chunks():
        if len(head) < SNIFF_BYTES:
            head += chunk[: SNIFF_BYTES - len(head)]
        sha.update(chunk)
        size += len(chunk)
    content.seek(0)
    name = display_name(filename)
    row = File(
        owner_id=owner_id,
        filename=name,
        purpose=purpose,
        bytes=size,
        sha256=sha.hexdigest(),
        content_type=sniff_content_type(head, name),
        expires_at=timezone.now() + timedelta(seconds=expires_after) if expires_after else None,
        origin_thread_id=origin_thread_id,
    )
    check_quota(row.owner_id, row.bytes)  # refuse early, before writing a blob we would delete
    row.data.save(row.id, content, save=False)
    try:
        with transaction.atomic():
            rowlock.lock(get_user_model().objects.filter(pk=row.owner_id))
            check_quota(row.owner_id, row.bytes)
            row.save()
    except BaseException:
        row.data.delete(save=False)
        raise
    return row


def remove_blobs(rows: Iterable[File]) -> None:
    """Delete the blobs of files whose rows a failed transaction rolled back (no signal fires then)."""
    for row in rows:
        if row.data.name:
            row.data.storage.delete(row.data.name)


def delete_file(file: File) -> None:
    file.delete()  # the blob goes after commit (_delete_blob)


# --- deletion -------------------------------------------------------------------------------------
def _delete_blob(sender: Any, instance: File, **kwargs: Any) -> None:
    storage, name = instance.data.storage, instance.data.name
    if name:
        transaction.on_commit(lambda: storage.delete(name), robust=True)


def _delete_thread_outputs(sender: Any, instance: Thread, **kwargs: Any) -> None:
    # Before the thread's row goes, in the same transaction: its outputs are files only it owned.
    File.objects.filter(origin_thread_id=instance.id, purpose=OUTPUT_PURPOSE).delete()


def connect() -> None:
    """Called from AppConfig.ready()."""
    post_delete.connect(_delete_blob, sender=File, dispatch_uid="storage.delete_blob")
    pre_delete.connect(_delete_thread_outputs, sender=Thread, dispatch_uid="storage.thread_outputs")


def _human(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"
