"""The chat product's use cases on top of the Assistants services.

A user's conversations are their chat threads (services/conversations.py: list, titles, search,
delete); versions of a turn are services/versions.py's. The page reads history newest-first
through the (thread, id) index. Errors are ChatError, in words for the page.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.files.uploadedfile import UploadedFile
from django.db import transaction

from assistants_app.errors import InvalidRequest, ThreadBusy, TokenBudgetExhausted, TooManyActiveRuns
from assistants_app.models import Assistant, File, Message, Run, RunStep, Thread
from assistants_app.models.run import ACTIVE_STATUSES, RunOrigin, RunStatus

from . import chat_assistants, chat_uploads, conversations, files, lookups, runs, versions
from .chat_errors import ChatError as ChatError

HISTORY_PAGE = 30
MAX_MESSAGE_CHARS = 32_000
# The most an attachment gets; it gets those its conversation's assistant has
# (chat_assistants.attachment_tools).
ATTACHMENT_TOOLS = [{"type": t} for t in chat_assistants.FILE_TOOLS]
# A reply that ended like this offers Retry: live, when its run ends, and after a reload.
RETRYABLE_STATUSES = (RunStatus.FAILED, RunStatus.EXPIRED, RunStatus.INCOMPLETE)


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
    with _picker_words():
        return chat_assistants.default()


def assistant_name() -> str:
    """The name the chat page shows for its default assistant."""
    assistant = Assistant.objects.filter(is_default=True).only("name").first()
    return (assistant.name if assistant else "") or "Assistant"


# --- the conversation's assistant (chat_assistants.py has the rules) -------------------------------
def assistant_choice(thread: Thread) -> chat_assistants.Choice:
    """Who answers in `thread` next, what the user may pick instead, and what the page must say."""
    with _picker_words():
        return chat_assistants.choice(thread)


def pick_assistant(user: Any, thread: Thread, assistant_id: str) -> chat_assistants.Choice:
    """The user picks the conversation's assistant (only one offered in the chat)."""
    if thread.owner_id != user.pk or not thread.is_chat:
        raise ChatError("That conversation doesn't exist (it may have been deleted).", status=404)
    with _picker_words():
        return chat_assistants.pick(thread, assistant_id)


def run_assistant_name(run_id: str) -> str:
    """The name of the assistant a run is answering with (its reply's header while it streams)."""
    name = Run.objects.filter(id=run_id).values_list("assistant__name", flat=True).first()
    return name or assistant_name()


def _conversation_assistant(thread: Thread) -> Assistant:
    return assistant_choice(thread).assistant


@contextmanager
def _picker_words() -> Iterator[None]:
    try:
        yield
    except chat_assistants.PickError as exc:
        raise ChatError(exc.message, status=exc.status) from exc


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


# --- sending ---------------------------------------------------------------------------------------
BUSY = "The assistant is still replying. Wait for it, or press Stop."


def send(
    user: Any,
    text: str,
    uploads: list[UploadedFile[bytes]] | None = None,
    images: list[UploadedFile[bytes]] | None = None,
    *,
    thread: Thread | None = None,
) -> tuple[Message, Run]:
    """Post the user's message with its attachments and images and start the reply, in one
    transaction: a refused message (busy thread, run cap, storage quota) leaves nothing behind.

    `uploads` are files for the tools (file search, code interpreter); `images` are shown to the
    model, as image_file parts of the message (for an assistant that accepts_images)."""
    uploads, images = list(uploads or []), list(images or [])
    for upload in uploads:
        chat_uploads.check_upload(upload)
    thread = thread or conversation(user)
    choice = assistant_choice(thread)
    assistant, attachment_tools = choice.assistant, choice.attachment_tools
    uploads, shown = chat_uploads.split_images(uploads, assistant)
    images += shown
    text = _checked_text(text, empty_ok=bool(images))
    if uploads and not attachment_tools:
        # The page turns attaching off for such an assistant; a file sent anyway is refused rather
        # than stored and silently never read.
        raise ChatError(
            f"{choice.name} can't read files (it has neither file search nor the code interpreter), "
            f"so “{files.display_name(uploads[0].name or '')}” was not sent. Remove the file, or pick an "
            "assistant that can read files."
        )
    if images and not chat_uploads.accepts_images(assistant):
        raise ChatError(
            f"{choice.name} can't look at images. Attach them as files instead.",
            status=415,
        )
    if len(images) > chat_uploads.MAX_IMAGES:
        raise ChatError(f"At most {chat_uploads.MAX_IMAGES} images can go with one message.")
    for image in images:
        chat_uploads.check_image(image)
    content: list[dict[str, Any]] = [{"type": "text", "text": text}] if text else []
    content += [{"type": "image_file", "image_file": {"upload": image}} for image in images]
    message = {
        "role": "user",
        "content": content,
        "attachments": [{"upload": u, "tools": attachment_tools} for u in uploads],
    }
    try:
        with _run_quota_words():
            # All of them, before storing any: no half-stored message.
            files.check_quota(user.pk, sum(u.size or 0 for u in uploads + images))
            with transaction.atomic():
                started = runs.start(thread, assistant, additional_messages=[message], origin=RunOrigin.CHAT)
                versions.record_answer(started.run, started.messages[0])
                conversations.touch(thread, text)
    except ThreadBusy as exc:
        raise ChatError(BUSY, status=409) from exc
    except files.StorageQuotaExceeded as exc:
        raise chat_uploads.quota_error(exc) from exc
    return started.messages[0], started.run


def retry(user: Any, thread: Thread | None = None) -> Run:
    """Answer the latest question again after a failed reply (its partial text stays a version)."""
    return regenerate(user, thread).run  # type: ignore[return-value]


def regenerate(user: Any, thread: Thread | None = None, message_id: str = "") -> versions.Change:
    thread = thread or conversation(user)
    with _version_words(), _run_quota_words():
        change = versions.regenerate(thread, _conversation_assistant(thread), message_id)
    conversations.touch(thread)
    return change


def edit(user: Any, thread: Thread, message_id: str, text: str) -> versions.Change:
    text = _checked_text(text)
    with _version_words(), _run_quota_words():
        change = versions.edit(thread, _conversation_assistant(thread), message_id, text)
    conversations.touch(thread)
    return change


def continue_reply(user: Any, thread: Thread) -> versions.Change:
    with _version_words(), _run_quota_words():
        change = versions.continue_reply(thread, _conversation_assistant(thread))
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


def _checked_text(text: str, *, empty_ok: bool = False) -> str:
    text = (text or "").strip()
    if not text and not empty_ok:
        raise ChatError("Type a message first.")
    if len(text) > MAX_MESSAGE_CHARS:
        raise ChatError(
            f"That message is too long ({len(text)} characters; the limit is {MAX_MESSAGE_CHARS})."
        )
    return text


@contextmanager
def _run_quota_words() -> Iterator[None]:
    """The per-user run cap and daily token budget (shared with the API, which answers 429) in plain
    words."""
    try:
        yield
    except TooManyActiveRuns as exc:
        raise ChatError(
            f"You already have {exc.limit} replies in progress (through the API, too), the most "
            "allowed at once. Please wait for one to finish, then send again.",
            status=429,
        ) from exc
    except TokenBudgetExhausted as exc:
        raise ChatError(
            f"You have reached today's limit of {exc.budget:,} tokens ({exc.used:,} used, through the "
            f"API too). You can send again after {exc.resets_at:%H:%M} UTC, or ask an administrator "
            "to raise your limit.",
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
