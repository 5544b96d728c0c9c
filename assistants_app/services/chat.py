"""The chat product's use cases on top of the Assistants services.

A user's conversations are their chat threads (services/conversations.py: list, titles, search,
delete); versions of a turn are services/versions.py's. The page reads history newest-first
through the (thread, id) index. Errors are ChatError, in words for the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import Any

import imagesize
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from assistants_app.errors import InvalidRequest, ThreadBusy, TooManyActiveRuns
from assistants_app.models import Assistant, File, Message, Run, RunStep, Thread
from assistants_app.models.run import ACTIVE_STATUSES, RunStatus

from . import conversations, feedback, files, lookups, runs, versions

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
# A reply that ended like this offers Retry: live, when its run ends, and after a reload.
RETRYABLE_STATUSES = (RunStatus.FAILED, RunStatus.EXPIRED, RunStatus.INCOMPLETE)


class ChatError(Exception):
    """A problem the user can fix or should know about; `message` is shown as is."""

    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


# --- threads ---------------------------------------------------------------------------------------
def live_thread(user: Any, *, create: bool = True) -> Thread | None:
    """The user's most recent conversation (kept for callers of the one-thread era)."""
    return conversations.current(user, create=create)


def conversation(user: Any, thread_id: str | None = None) -> Thread:
    """The conversation `thread_id` of this user, or their most recent one when none is named."""
    if not thread_id:
        return conversations.current(user)
    try:
        return conversations.get(user, thread_id)
    except conversations.NotYours as exc:
        raise ChatError("That conversation doesn't exist (it may have been deleted).", status=404) from exc


def default_assistant() -> Assistant:
    assistant = Assistant.objects.filter(is_default=True).first()
    if assistant is None:
        raise ChatError(
            "No assistant is configured for the chat yet. An administrator can create one with "
            "`manage.py bootstrap` or in the admin.",
            status=503,
        )
    return assistant


def assistant_name() -> str:
    """The name the chat page shows for its assistant."""
    assistant = Assistant.objects.filter(is_default=True).only("name").first()
    return (assistant.name if assistant else "") or "Assistant"


def last_run(thread: Thread) -> Run | None:
    return Run.objects.filter(thread=thread).order_by("-id").first()


def user_run(user: Any, run_id: str) -> Run | None:
    """A run of one of the user's chat threads; anyone else's run is indistinguishable from none."""
    if not isinstance(run_id, str) or not run_id.startswith("run_") or len(run_id) > 40:
        return None
    return Run.objects.filter(id=run_id, thread__owner=user, thread__is_chat=True).first()


def runs_to_follow(user: Any, thread_id: str, page_run: str) -> tuple[str, list[str]]:
    """What a socket that opens should stream: its conversation's id ('' when the user has none, or
    names one that is not theirs), then the run its page was rendered with (if it is that
    conversation's), then the conversation's active run, if that is another one."""
    if thread_id:
        try:
            thread: Thread | None = conversations.get(user, thread_id)
        except conversations.NotYours:
            return "", []
    else:
        thread = conversations.current(user, create=False)
    if thread is None:
        return "", []
    run_ids: list[str] = []
    if page_run:
        run = user_run(user, page_run)
        if run is not None and run.thread_id == thread.id:
            run_ids.append(run.id)
    active = lookups.active_run(thread)
    if active is not None and active.id not in run_ids:
        run_ids.append(active.id)
    return thread.id, run_ids


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
    qs = Message.objects.filter(thread=thread, superseded=False).exclude(status=Message.Status.IN_PROGRESS)
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
    qs = RunStep.objects.filter(run__thread=thread, type="tool_calls").exclude(run__messages__superseded=True)
    if exclude_run:
        qs = qs.exclude(run_id=exclude_run)
    if oldest is not None:
        qs = qs.filter(created_at__gte=oldest.created_at)
    if before:
        upper = Message.objects.filter(id=before, thread=thread).values_list("created_at", flat=True).first()
        if upper is not None:
            qs = qs.filter(created_at__lt=upper)
    return list(qs.order_by("id")[:200])


def question_of(run_id: str) -> Message | None:
    """The user message a run answers (the thread's last one before the run), with file names."""
    run = Run.objects.filter(id=run_id).only("thread_id", "created_at").first()
    if run is None:
        return None
    msg = (
        Message.objects.filter(thread_id=run.thread_id, role="user", created_at__lte=run.created_at)
        .order_by("-id")
        .first()
    )
    if msg is not None:
        attach_file_names([msg])
    return msg


def run_messages(run_id: str) -> list[Message]:
    """A run's current (not superseded) messages from their rows, for when its event log is gone,
    with file names."""
    msgs = list(Message.objects.filter(run_id=run_id, superseded=False).order_by("id"))
    attach_file_names(msgs)
    return msgs


def message(message_id: str) -> Message | None:
    """One message by id, with file names (the socket renders a finished reply from its row)."""
    msg = Message.objects.filter(id=message_id).first()
    if msg is not None:
        attach_file_names([msg])
    return msg


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


# --- what a page of messages shows besides their text ----------------------------------------------
@dataclass(frozen=True)
class Image:
    file_id: str
    name: str
    width: int | None = None
    height: int | None = None


@dataclass
class Decorations:
    pagers: dict[str, versions.Pager] = field(default_factory=dict)
    ratings: dict[str, int] = field(default_factory=dict)
    images: dict[str, Image] = field(default_factory=dict)  # by file id
    assistant_names: dict[str, str] = field(default_factory=dict)  # by assistant id


def decorations(user: Any, messages: list[Message]) -> Decorations:
    """Version pagers, the user's ratings, image names and sizes (so an image takes its place before
    it loads and the page does not jump) and the name of the assistant that wrote each reply."""
    replies = [m for m in messages if m.role == "assistant"]
    image_ids = {
        p["image_file"]["file_id"]
        for m in replies
        for p in m.content or []
        if isinstance(p, dict) and p.get("type") == "image_file"
    }
    images: dict[str, Image] = {}
    for f in lookups.live_files(user).filter(id__in=image_ids) if image_ids else []:
        images[f.id] = Image(f.id, f.filename, *_image_size(f))
    assistant_ids = {m.assistant_id for m in replies if m.assistant_id}
    names = (
        dict(Assistant.objects.filter(id__in=assistant_ids).values_list("id", "name"))
        if assistant_ids
        else {}
    )
    return Decorations(
        pagers=versions.pagers(messages),
        ratings=feedback.ratings(user, [m.id for m in replies]),
        images=images,
        assistant_names={k: v for k, v in names.items() if v},
    )


def _image_size(f: File) -> tuple[int | None, int | None]:
    try:
        with f.data.open("rb") as fh:
            width, height = imagesize.get(fh)
    except (OSError, ValueError):
        return None, None
    return (width, height) if width > 0 and height > 0 else (None, None)


# --- sending ---------------------------------------------------------------------------------------
BUSY = "The assistant is still replying. Wait for it, or press Stop."


def check_upload(upload: UploadedFile[bytes]) -> None:
    """The chat's own limits on an attachment, in words; storing it is files.store_file's."""
    name = files.display_name(upload.name or "")
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


def _quota_error(exc: files.StorageQuotaExceeded) -> ChatError:
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


def send(
    user: Any, text: str, uploads: list[UploadedFile[bytes]] | None = None, *, thread: Thread | None = None
) -> tuple[Message, Run]:
    """Post the user's message with its attachments and start the reply, in one transaction: a
    refused message (busy thread, run cap, storage quota) leaves nothing behind."""
    uploads = list(uploads or [])
    text = _checked_text(text)
    for upload in uploads:
        check_upload(upload)
    assistant = default_assistant()
    thread = thread or conversation(user)
    message = {
        "role": "user",
        "content": text,
        "attachments": [{"upload": u, "tools": ATTACHMENT_TOOLS} for u in uploads],
    }
    try:
        with _run_quota_words():
            # All of them, before storing any: no half-stored message.
            files.check_quota(user.pk, sum(u.size or 0 for u in uploads))
            with transaction.atomic():
                started = runs.start(thread, assistant, additional_messages=[message])
                versions.record_answer(started.run, started.messages[0])
                conversations.touch(thread, text)
    except ThreadBusy as exc:
        raise ChatError(BUSY, status=409) from exc
    except files.StorageQuotaExceeded as exc:
        raise _quota_error(exc) from exc
    return started.messages[0], started.run


def retry(user: Any, thread: Thread | None = None) -> Run:
    """Answer the latest question again after a failed reply (its partial text stays a version)."""
    return regenerate(user, thread).run  # type: ignore[return-value]


def regenerate(user: Any, thread: Thread | None = None, message_id: str = "") -> versions.Change:
    thread = thread or conversation(user)
    with _version_words(), _run_quota_words():
        change = versions.regenerate(thread, default_assistant(), message_id)
    conversations.touch(thread)
    return change


def edit(user: Any, thread: Thread, message_id: str, text: str) -> versions.Change:
    text = _checked_text(text)
    with _version_words(), _run_quota_words():
        change = versions.edit(thread, default_assistant(), message_id, text)
    conversations.touch(thread)
    return change


def continue_reply(user: Any, thread: Thread) -> versions.Change:
    with _version_words(), _run_quota_words():
        change = versions.continue_reply(thread, default_assistant())
    conversations.touch(thread)
    return change


def select_version(user: Any, thread: Thread, message_id: str, index: int) -> versions.Change:
    with _version_words():
        return versions.select(thread, message_id, index)


@contextmanager
def _version_words() -> Iterator[None]:
    try:
        yield
    except versions.VersionError as exc:
        raise ChatError(exc.message, status=exc.status) from exc


def _checked_text(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise ChatError("Type a message first.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ChatError(
            f"That message is too long ({len(text)} characters; the limit is {MAX_MESSAGE_CHARS})."
        )
    return text


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
        return runs.cancel_run(run)
    except InvalidRequest:
        run.refresh_from_db()
        return run
