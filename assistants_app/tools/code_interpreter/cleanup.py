"""Deleting a thread ends its code-interpreter Python session and removes its working directory
(link-safely, after commit).

Connected from AppConfig.ready(), beside services/files.py's deletion signals, so that the API, the
chat page, the admin and a user's deletion all get it without calling anything.
"""

from __future__ import annotations

import logging
from typing import Any

from django.db import transaction
from django.db.models.signals import post_delete

from assistants_app.models import Thread

from . import config, sessions
from . import workdir as wd

log = logging.getLogger(__name__)


def _remove_thread_workdir(sender: Any, instance: Thread, **kwargs: Any) -> None:
    thread_id = instance.id
    transaction.on_commit(lambda: remove_workdir(thread_id), robust=True)


def remove_workdir(thread_id: str) -> None:
    """Delete a thread's /mnt/data without following anything the sandboxed code left in it."""
    sessions.end_thread(thread_id)  # its Python session first (other processes: sessions.py)
    path = config.workdir_for(thread_id)
    try:
        wd.remove_workdir(path.parent, path.name)
    except OSError:
        log.warning("could not remove the working directory of %s", thread_id, exc_info=True)


def connect() -> None:
    post_delete.connect(_remove_thread_workdir, sender=Thread, dispatch_uid="storage.thread_workdir")
