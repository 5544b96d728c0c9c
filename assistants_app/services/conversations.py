"""A user's conversations: the chat threads they own, listed by last activity, newest first.

The returning user lands on their most recent conversation (created on the first visit); "New
conversation" starts another without hiding the old ones (an empty one is reused rather than piling
up blank entries). Titles come from the first question at once. Search looks at titles and at
`Message.search_text`, a lower-cased copy of each chat message's text kept by `Message.save`.

Search is a substring match (`LIKE '%…%'`) bounded to the user's chat threads: it reads every
message of that user, which is milliseconds for thousands of messages and grows linearly; a
full-text index (SQLite FTS5, PostgreSQL tsvector/pg_trgm) is the step beyond it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, overload

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from assistants_app.errors import InvalidRequest
from assistants_app.lib import rowlock
from assistants_app.models import File, Message, Thread, VectorStore

from . import lookups, runs, threads, vector_stores

LIST_PAGE = 50
TITLE_CHARS = 80
MAX_TITLE_CHARS = 200
MAX_QUERY_CHARS = 200


class NotYours(Exception):
    """No such conversation for this user (another user's is indistinguishable from a missing one)."""


def _chat_threads(user: Any) -> QuerySet[Thread]:
    return Thread.objects.filter(owner=user, is_chat=True)


def _recent(qs: QuerySet[Thread]) -> QuerySet[Thread]:
    return qs.order_by("-last_activity_at", "-id")


def get(user: Any, thread_id: str) -> Thread:
    if not isinstance(thread_id, str) or not thread_id.startswith("thread_") or len(thread_id) > 40:
        raise NotYours(thread_id)
    thread = _chat_threads(user).filter(id=thread_id).first()
    if thread is None:
        raise NotYours(thread_id)
    return lookups.owned_by(thread, user)


@overload
def current(user: Any, *, create: Literal[True] = ...) -> Thread: ...
@overload
def current(user: Any, *, create: bool) -> Thread | None: ...


def current(user: Any, *, create: bool = True) -> Thread | None:
    """The user's most recent conversation; the first visit creates it."""
    thread = _recent(_chat_threads(user)).first()
    if thread is not None:
        return lookups.owned_by(thread, user)
    if not create:
        return None
    with transaction.atomic():
        # Two first visits at once (two tabs) must not make two conversations: the user's row lock
        # (an IMMEDIATE transaction on SQLite) orders them, and the second sees the first's.
        rowlock.lock(get_user_model().objects.filter(pk=user.pk))
        thread = _recent(_chat_threads(user)).first()
        return thread or threads.create_thread(user, is_chat=True)


def start_new(user: Any) -> Thread:
    """A fresh conversation on top of the list; an empty one the user already has is reused."""
    with transaction.atomic():
        rowlock.lock(get_user_model().objects.filter(pk=user.pk))
        empty = (
            _chat_threads(user)
            .filter(~Exists(Message.objects.filter(thread_id=OuterRef("id"))))
            .order_by("-id")
            .first()
        )
        if empty is not None:
            Thread.objects.filter(id=empty.id).update(last_activity_at=timezone.now())
            empty.refresh_from_db()
            return empty
        return threads.create_thread(user, is_chat=True)


def touch(thread: Thread, first_text: str = "") -> None:
    """Mark activity (the list's order); the first question also names an untitled conversation."""
    now = timezone.now()
    update: dict[str, Any] = {"last_activity_at": now}
    if first_text and not thread.title:
        update["title"] = derive_title(first_text)
    Thread.objects.filter(id=thread.id).update(**update)
    for k, v in update.items():
        setattr(thread, k, v)


def derive_title(text: str) -> str:
    """The first line of the question, whitespace folded, cut at a word near TITLE_CHARS."""
    words = " ".join(text.split())
    if len(words) <= TITLE_CHARS:
        return words
    cut = words[:TITLE_CHARS].rsplit(" ", 1)[0] or words[:TITLE_CHARS]
    return cut + "…"


def rename(user: Any, thread_id: str, title: str) -> Thread:
    thread = get(user, thread_id)
    title = " ".join((title or "").split())
    if not title:
        raise InvalidRequest("A title can't be empty.", param="title")
    if len(title) > MAX_TITLE_CHARS:
        raise InvalidRequest(f"A title has at most {MAX_TITLE_CHARS} characters.", param="title")
    Thread.objects.filter(id=thread.id).update(title=title)
    thread.title = title
    return thread


def delete(user: Any, thread_id: str) -> None:
    """Delete a conversation for real: its messages, runs and steps (cascade), the files its code
    wrote and its /mnt/data (deletion signals), its own vector store, and the files the user
    attached in it that nothing else refers to. A reply still being written is stopped first."""
    thread = get(user, thread_id)
    active = lookups.active_run(thread)
    if active is not None:
        try:
            runs.cancel_run(active)
        except InvalidRequest:
            pass  # it finished meanwhile
        # A run in progress goes through `cancelling` until its executor lets go; the deletion
        # waits for that rather than pulling the rows from under it.
        _wait_idle(thread)
    attached = _attached_file_ids(thread)
    store_ids = list((thread.tool_resources or {}).get("file_search", {}).get("vector_store_ids") or [])
    with transaction.atomic():
        threads.delete_thread(thread)
        # Only the store made for this thread's attachments (attach_to_thread_store); a store the
        # user attached through the API may serve other threads.
        for store in VectorStore.objects.filter(owner=user, id__in=store_ids, name=f"Files of {thread_id}"):
            vector_stores.delete_store(store)
        still_used = _file_ids_used_elsewhere(user, attached)
        for f in File.objects.filter(owner=user, id__in=attached - still_used):
            f.delete()  # the blob goes after commit


def _wait_idle(thread: Thread, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while lookups.active_run(thread) is not None and time.monotonic() < deadline:
        time.sleep(0.05)


def _attached_file_ids(thread: Thread) -> set[str]:
    ids: set[str] = set()
    for attachments in (
        Message.objects.filter(thread=thread).exclude(attachments=[]).values_list("attachments", flat=True)
    ):
        ids.update(a.get("file_id", "") for a in attachments or [] if isinstance(a, dict))
    ids.discard("")
    return ids


def _file_ids_used_elsewhere(user: Any, file_ids: set[str]) -> set[str]:
    """Of `file_ids`, those another of the user's threads, assistants or stores still refers to."""
    if not file_ids:
        return set()
    from assistants_app.models import Assistant, VectorStoreFile

    used: set[str] = set()
    for attachments in (
        Message.objects.filter(thread__owner=user)
        .exclude(attachments=[])
        .values_list("attachments", flat=True)
    ):
        used.update(a.get("file_id", "") for a in attachments or [] if isinstance(a, dict))
    used.update(
        VectorStoreFile.objects.filter(file_id__in=file_ids, vector_store__owner=user).values_list(
            "file_id", flat=True
        )
    )
    for resources in Assistant.objects.filter(owner=user).values_list("tool_resources", flat=True):
        used.update(json.dumps(resources or {}).split('"'))
    for resources in Thread.objects.filter(owner=user).values_list("tool_resources", flat=True):
        used.update(json.dumps(resources or {}).split('"'))
    return used & file_ids


# --- the list and search ------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    last_activity_at: datetime


@dataclass(frozen=True)
class ListPage:
    entries: list[Entry]
    after: str | None  # cursor of the next (older) page
    query: str


def listing(user: Any, *, query: str = "", after: str = "", limit: int = LIST_PAGE) -> ListPage:
    """A page of the user's conversations, newest activity first; `query` filters by title and text.

    Keyset pagination on (last_activity_at, id): `after` is "<iso time>|<thread id>" of the last
    entry shown, so a page costs one index range scan however long the list is.
    """
    query = " ".join((query or "").split())[:MAX_QUERY_CHARS]
    qs = _chat_threads(user)
    if query:
        needle = query.casefold()
        in_text = Message.objects.filter(
            thread_id=OuterRef("id"), superseded=False, search_text__contains=needle
        )
        qs = qs.filter(Q(title__icontains=query) | Exists(in_text))
    if after:
        stamp, _, last_id = after.partition("|")
        try:
            when = datetime.fromisoformat(stamp)
        except ValueError:
            when = None
        if when is not None and last_id.startswith("thread_"):
            qs = qs.filter(Q(last_activity_at__lt=when) | Q(last_activity_at=when, id__lt=last_id))
    rows = list(_recent(qs).only("id", "title", "last_activity_at")[: limit + 1])
    more = len(rows) > limit
    rows = rows[:limit]
    entries = [Entry(t.id, t.title or "New conversation", t.last_activity_at) for t in rows]
    cursor = f"{rows[-1].last_activity_at.isoformat()}|{rows[-1].id}" if more and rows else None
    return ListPage(entries, cursor, query)
