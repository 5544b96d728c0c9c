"""Finding a user's objects. Another owner's object is indistinguishable from a missing one (404)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import Model, QuerySet

from assistants_app.errors import InvalidRequest, NotFound
from assistants_app.models import Assistant, File, Message, Run, RunStep, Thread
from assistants_app.models.run import ACTIVE_STATUSES


def one[M: Model](rows: QuerySet[M], kind: str, object_id: str, *, param: str | None = None) -> M:
    """The object `rows` selects, or NotFound naming `kind` and `object_id`."""
    obj = rows.first()
    if obj is None:
        raise NotFound(kind, object_id, param=param)
    return obj


def get_assistant(user: Any, assistant_id: str, *, param: str | None = None) -> Assistant:
    return one(Assistant.objects.filter(id=assistant_id, owner=user), "assistant", assistant_id, param=param)


def get_thread(user: Any, thread_id: str) -> Thread:
    return owned_by(one(Thread.objects.filter(id=thread_id, owner=user), "thread", thread_id), user)


def owned_by(thread: Thread, user: Any) -> Thread:
    """`thread`, selected by its owner `user`, carrying it: whoever reads thread.owner next
    (checking a new message's files, say) needs no query for it."""
    thread.owner = user
    return thread


def get_message(user: Any, thread_id: str, message_id: str) -> Message:
    rows = Message.objects.filter(id=message_id, thread_id=thread_id, thread__owner=user)
    return one(rows, "message", message_id)


def get_run(user: Any, thread_id: str, run_id: str) -> Run:
    return one(Run.objects.filter(id=run_id, thread_id=thread_id, thread__owner=user), "run", run_id)


def get_step(user: Any, thread_id: str, run_id: str, step_id: str) -> RunStep:
    rows = RunStep.objects.filter(
        id=step_id, run_id=run_id, run__thread_id=thread_id, run__thread__owner=user
    )
    return one(rows, "run step", step_id)


def active_run(thread: Thread) -> Run | None:
    return Run.objects.filter(thread=thread, status__in=ACTIVE_STATUSES).first()


# --- files ------------------------------------------------------------------------------------------
def live_files(user: Any) -> QuerySet[File]:
    """A user's live files: what /v1/files lists and serves, and all that anything may refer to."""
    return File.objects.live().filter(owner=user)


def get_file(user: Any, file_id: str) -> File:
    return one(live_files(user).filter(id=file_id), "file", file_id)


def check_file_ids(user: Any, file_ids: Sequence[str], param: str, suffix: str = "") -> None:
    """400 `invalid_file_id` naming the first id that is not one of the user's live files."""
    found = set(live_files(user).filter(id__in=set(file_ids)).values_list("id", flat=True))
    for i, fid in enumerate(file_ids):
        if fid not in found:
            raise InvalidRequest(
                f"No file found with id '{fid}'.", param=f"{param}[{i}]{suffix}", code="invalid_file_id"
            )


def check_file_id(user: Any, file_id: str, param: str) -> None:
    if not live_files(user).filter(id=file_id).exists():
        raise InvalidRequest(f"No file found with id '{file_id}'.", param=param, code="invalid_file_id")
