"""Stored bytes: each user's quota, and what deleting a thread or a user removes from disk.

One home for both rules, shared by the API (/v1/files), the chat page's attachments, the code
interpreter's output files, the admin and user deletion:

- `save_file` stores a File's blob and row only while the owner's total stays within
  USER_STORAGE_QUOTA_BYTES. The check and the insert run in one transaction that first locks the
  owner's user row (SELECT ... FOR UPDATE; SQLite transactions here are IMMEDIATE, so writers are
  serialised anyway), so two concurrent uploads cannot both squeeze under the limit.
- Deleting a thread ends its code-interpreter Python session and removes its working directory
  (link-safely, after commit) and the output files its executions produced (File.origin_thread_id); deleting a user cascades
  to their threads and files, and every File row deleted, by any path, takes its blob with it.
  These run from model signals, so the API, the chat page, the admin and a user's deletion all
  get them without calling anything.
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Sum
from django.db.models.signals import post_delete, pre_delete

from .errors import ServiceError
from .models import File, Thread
from .tools.code_interpreter import config as ci_config
from .tools.code_interpreter import sessions as ci_sessions
from .tools.code_interpreter import workdir as wd

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
    return int(getattr(settings, "USER_STORAGE_QUOTA_BYTES", 0) or 0)


def used_bytes(user_id: Any) -> int:
    return int(File.objects.filter(owner_id=user_id).aggregate(n=Sum("bytes"))["n"] or 0)


def check_quota(user_id: Any, size: int) -> None:
    """Raise StorageQuotaExceeded if `size` more bytes would not fit (no lock: callers that store
    must go through save_file, which checks again under the lock)."""
    quota = quota_bytes()
    if quota:
        used = used_bytes(user_id)
        if used + size > quota:
            raise StorageQuotaExceeded(used=used, quota=quota, size=size)


def save_file(row: File, content: Any, *, name: str = "upload") -> File:
    """Write `content` (a Django File/UploadedFile/ContentFile) as row's blob and insert the row,
    within the owner's quota. Nothing is left on disk when it refuses."""
    check_quota(row.owner_id, row.bytes)  # refuse early, before writing a blob we would delete
    row.data.save(name, content, save=False)
    try:
        with transaction.atomic():
            get_user_model().objects.select_for_update().filter(pk=row.owner_id).first()
            check_quota(row.owner_id, row.bytes)
            row.save()
    except BaseException:
        row.data.delete(save=False)
        raise
    return row


# --- deletion -------------------------------------------------------------------------------------
def _delete_blob(sender: Any, instance: File, **kwargs: Any) -> None:
    storage, name = instance.data.storage, instance.data.name
    if name:
        transaction.on_commit(lambda: storage.delete(name), robust=True)


def _delete_thread_outputs(sender: Any, instance: Thread, **kwargs: Any) -> None:
    # Before the thread's row goes, in the same transaction: its outputs are files only it owned.
    File.objects.filter(origin_thread_id=instance.id, purpose=OUTPUT_PURPOSE).delete()


def _remove_thread_workdir(sender: Any, instance: Thread, **kwargs: Any) -> None:
    thread_id = instance.id
    transaction.on_commit(lambda: remove_workdir(thread_id), robust=True)


def remove_workdir(thread_id: str) -> None:
    """Delete a thread's /mnt/data without following anything the sandboxed code left in it."""
    ci_sessions.end_thread(thread_id)  # its Python session first (other processes: sessions.py)
    path = ci_config.workdir_for(thread_id)
    try:
        wd.remove_workdir(path.parent, path.name)
    except OSError:
        log.warning("could not remove the working directory of %s", thread_id, exc_info=True)


def connect() -> None:
    """Called from AppConfig.ready()."""
    post_delete.connect(_delete_blob, sender=File, dispatch_uid="storage.delete_blob")
    pre_delete.connect(_delete_thread_outputs, sender=Thread, dispatch_uid="storage.thread_outputs")
    post_delete.connect(_remove_thread_workdir, sender=Thread, dispatch_uid="storage.thread_workdir")


def _human(n: int) -> str:
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{n} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} bytes"
