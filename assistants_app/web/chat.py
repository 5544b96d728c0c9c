"""The chat product's use cases on top of the Assistants services.

One live chat thread per user (the partial unique constraint "one_live_chat_thread_per_user" is
the arbiter, not a read-then-write), "new conversation" archives it, and the page reads history
newest-first through the (thread, id) index.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import IntegrityError, transaction
from django.utils import timezone

from assistants_app import services, services_storage
from assistants_app.errors import InvalidRequest, TooManyActiveRuns
from assistants_app.models import Assistant, File, Message, Run, RunStep, Thread
from assistants_app.models.run import ACTIVE_STATUSES

log = logging.getLogger(__name__)

HISTORY_PAGE = 30
MAX_MESSAGE_CHARS = 32_000
# What the code interpreter and file search can read; anything else is refused up front rather
# than failing later inside a run.
ALLOWED_EXTENSIONS = frozenset(
    {
        ".txt", ".md", ".csv", ".tsv", ".json", ".jsonl", ".xml", ".yaml", ".yml", ".html", ".htm",
        ".pdf", ".docx", ".pptx", ".xlsx", ".py", ".js", ".ts", ".java", ".c", ".cpp", ".h", ".rb",
        ".go", ".rs", ".sh", ".sql", ".tex", ".css", ".log", ".png", ".jpg", ".jpeg", ".gif",
    }
)  # fmt: skip
ATTACHMENT_TOOLS = [{"type": "file_search"}, {"type": "code_interpreter"}]


class ChatError(Exception):
    """A problem the user can fix or should know about; `message` is shown as is."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def user_group(user_id: Any) -> str:
    """The channel-layer group of one user's chat sockets (control messages only, never deltas)."""
    return f"chat.user.{user_id}"


# --- threads ---------------------------------------------------------------------------------------
def _live_threads(user: Any) -> Any:
    return Thread.objects.filter(owner=user, is_chat=True, archived_at__isnull=True)


def live_thread(user: Any, *, create: bool = True) -> Thread | None:
    thread = _live_threads(user).first()
    if thread is not None or not create:
        return thread
    try:
        with transaction.atomic():
            return services.create_thread(user, is_chat=True)
    except IntegrityError:
        # A concurrent request (another tab) created it between our read and insert.
        return _live_threads(user).get()


def archive(user: Any) -> Thread | None:
    """Archive the live thread; the next visit creates a fresh one. A run still going is stopped."""
    thread = live_thread(user, create=False)
    if thread is None:
        return None
    run = services.active_run(thread)
    if run is not None:
        try:
            services.cancel_run(run)
        except InvalidRequest:
            pass  # it finished meanwhile
    Thread.objects.filter(id=thread.id, archived_at__isnull=True).update(archived_at=timezone.now())
    return thread


def default_assistant() -> Assistant:
    assistant = Assistant.objects.filter(is_default=True).first()
    if assistant is None:
        raise ChatError(
            "No assistant is configured for the chat yet. An administrator can create one with "
            "`manage.py bootstrap` or in the admin.",
            status=503,
        )
    return assistant


def last_run(thread: Thread) -> Run | None:
    return Run.objects.filter(thread=thread).order_by("-id").first()


def user_run(user: Any, run_id: str) -> Run | None:
    """A run of one of the user's chat threads; anyone else's run is indistinguishable from none."""
    if not isinstance(run_id, str) or not run_id.startswith("run_") or len(run_id) > 40:
        return None
    return Run.objects.filter(id=run_id, thread__owner=user, thread__is_chat=True).first()


# --- history ---------------------------------------------------------------------------------------
@dataclass
class HistoryPage:
    messages: list[Message]  # oldest first, ready to render top to bottom
    before: str | None  # the cursor for the next (older) page, None when this is the oldest
    steps: list[RunStep] = field(default_factory=list)  # tool activity between those messages

    def items(self) -> list[Message | RunStep]:
        """Messages and tool steps in the order they happened."""
        merged: list[Message | RunStep] = [*self.messages, *self.steps]
        merged.sort(key=lambda x: (x.created_at, x.id.split("_", 1)[-1]))
        return merged


def history(
    thread: Thread, *, before: str | None = None, exclude_run: str | None = None, limit: int = HISTORY_PAGE
) -> HistoryPage:
    """A page of finished messages, newest first from the index, returned oldest first.

    Messages of `exclude_run` (the run still streaming) are left to the websocket, which replays
    that run from its first event: rendering them here too would show them twice.
    """
    qs = Message.objects.filter(thread=thread).exclude(status=Message.Status.IN_PROGRESS)
    if exclude_run:
        qs = qs.exclude(run_id=exclude_run)
    if before:
        qs = qs.filter(id__lt=before)
    rows = list(qs.order_by("-id")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    rows.reverse()
    attach_file_names(rows)
    page = HistoryPage(rows, rows[0].id if more and rows else None)
    if rows:
        page.steps = _tool_steps(thread, rows[0] if more else None, before, exclude_run)
    return page


def _tool_steps(
    thread: Thread, oldest: Message | None, before: str | None, exclude_run: str | None
) -> list[RunStep]:
    """The tool steps that happened within a history page's span of time."""
    qs = RunStep.objects.filter(run__thread=thread, type="tool_calls")
    if exclude_run:
        qs = qs.exclude(run_id=exclude_run)
    if oldest is not None:
        qs = qs.filter(created_at__gte=oldest.created_at)
    if before:
        upper = Message.objects.filter(id=before, thread=thread).values_list("created_at", flat=True).first()
        if upper is not None:
            qs = qs.filter(created_at__lt=upper)
    return list(qs.order_by("id")[:200])


def attach_file_names(messages: list[Message]) -> None:
    """Set `m.files` to [(file_id, filename)] for rendering, with one query for the whole page."""
    ids = {a.get("file_id") for m in messages for a in (m.attachments or []) if isinstance(a, dict)}
    names = dict(File.objects.filter(id__in=ids).values_list("id", "filename")) if ids else {}
    for m in messages:
        m.files = [  # type: ignore[attr-defined]
            (a["file_id"], names.get(a["file_id"], a["file_id"]))
            for a in (m.attachments or [])
            if isinstance(a, dict) and a.get("file_id")
        ]


# --- sending ---------------------------------------------------------------------------------------
def store_attachment(user: Any, upload: UploadedFile) -> File:
    name = PurePath(upload.name or "upload").name[:255] or "upload"
    if upload.size is not None and upload.size > settings.FILE_UPLOAD_MAX_BYTES:
        raise ChatError(
            f"“{name}” is {_human(upload.size)}; the limit is {_human(settings.FILE_UPLOAD_MAX_BYTES)}.",
            status=413,
        )
    if upload.size == 0:
        raise ChatError(f"“{name}” is empty.")
    suffix = PurePath(name).suffix.lower()
    if suffix not in ALLOWED_EXTENSIONS:
        allowed = ", ".join(sorted(ALLOWED_EXTENSIONS))
        raise ChatError(
            f"Files of type “{suffix or name}” can't be attached. Allowed: {allowed}.", status=415
        )
    digest = hashlib.sha256()
    for chunk in upload.chunks():
        digest.update(chunk)
    upload.seek(0)
    f = File(
        owner=user,
        filename=name,
        purpose="assistants",
        bytes=upload.size or 0,
        sha256=digest.hexdigest(),
        content_type=(upload.content_type or "")[:100],
    )
    try:
        return services_storage.save_file(f, upload, name=name)
    except services_storage.StorageQuotaExceeded as exc:
        raise _quota_error(exc) from exc


def _quota_error(exc: services_storage.StorageQuotaExceeded) -> ChatError:
    return ChatError(
        f"There is no room left for this file: you have used {_human(exc.used)} of your "
        f"{_human(exc.quota)} of storage, and it needs {_human(exc.size)}. "
        "An administrator can remove old files or raise the limit.",
        status=413,
    )


def _human(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def send(user: Any, text: str, uploads: list[UploadedFile] = ()) -> tuple[Message, Run]:  # type: ignore[assignment]
    """Post the user's message and start the reply, in one transaction (no orphan messages)."""
    text = (text or "").strip()
    if not text:
        raise ChatError("Type a message first.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ChatError(
            f"That message is too long ({len(text)} characters; the limit is {MAX_MESSAGE_CHARS})."
        )
    assistant = default_assistant()
    thread = live_thread(user)
    assert thread is not None
    busy = services.active_run(thread)
    if busy is not None:
        raise ChatError("The assistant is still replying. Wait for it, or press Stop.", status=409)
    with _run_quota_words():
        # Before the attachments are stored: a refused message leaves nothing behind.
        services.check_run_quota(user.pk)
    try:  # all of them, before storing any: no half-stored message
        services_storage.check_quota(user.pk, sum(u.size or 0 for u in uploads))
    except services_storage.StorageQuotaExceeded as exc:
        raise _quota_error(exc) from exc
    files = [store_attachment(user, u) for u in uploads]
    attachments = [{"file_id": f.id, "tools": ATTACHMENT_TOOLS} for f in files]
    try:
        with _run_quota_words():
            run = services.start_run(
                thread,
                assistant,
                additional_messages=[{"role": "user", "content": text, "attachments": attachments}],
            )
    except services.ThreadBusy as exc:
        raise ChatError("The assistant is still replying. Wait for it, or press Stop.", status=409) from exc
    message = Message.objects.filter(thread=thread, role="user").order_by("-id").first()
    assert message is not None
    return message, run


def retry(user: Any) -> Run:
    thread = live_thread(user)
    assert thread is not None
    assistant = default_assistant()
    try:
        with _run_quota_words():
            return services.start_run(thread, assistant)
    except services.ThreadBusy as exc:
        raise ChatError("The assistant is already replying.", status=409) from exc


@contextmanager
def _run_quota_words() -> Iterator[None]:
    """The per-user run cap (shared with the API, which answers 429) in plain words."""
    try:
        yield
    except TooManyActiveRuns as exc:
        raise ChatError(
            f"You already have {exc.limit} replies in progress (through the API, too), the most "
            "allowed at once. Please wait for one to finish, then send again.",
            status=429,
        ) from exc


def stop(user: Any, run_id: str) -> Run:
    run = user_run(user, run_id)
    if run is None:
        raise ChatError("No such run.", status=404)
    if run.status not in ACTIVE_STATUSES:
        return run
    try:
        return services.cancel_run(run)
    except InvalidRequest:
        run.refresh_from_db()
        return run


# --- telling the user's other sockets --------------------------------------------------------------
def notify(user_id: Any, message: dict[str, Any]) -> None:
    """A small control message to the user's sockets. The channel layer may drop it; every socket
    also checks for an active run when it (re)connects, so a lost notice costs only liveness in
    other tabs, never text."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id), message)
    except Exception:
        log.warning("could not notify %s", user_group(user_id), exc_info=True)
