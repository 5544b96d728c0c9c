"""Versions of a conversation's turns: regenerate, edit and resend, continue after Stop, flip.

A conversation stays one linear list of messages. An earlier version is not deleted but marked
`superseded`: hidden from the page's history and left out of every prompt (runs/context.py), so the
model only ever sees the current path. Which question a run answers is a ChatAnswer row, so an
answer's versions are the runs answering the same question (a "Continue" run extends the version it
continues); a question's versions are the user messages sharing its `version_group`.

Flipping to another version makes it the current one: that is what the conversation continues from.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q

from assistants_app.errors import ThreadBusy
from assistants_app.models import Assistant, ChatAnswer, Message, Run, RunStep, Thread
from assistants_app.models.run import RunOrigin
from assistants_app.runs import vision

from . import lookups, runs, threads

CONTINUE_INSTRUCTIONS = (
    "Your previous reply was cut off. Continue it exactly where it stopped, without repeating any of "
    "it and without any preamble."
)


class VersionError(Exception):
    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Pager:
    index: int  # 1-based
    count: int


@dataclass
class Change:
    """What a version change did, for the page: elements to remove, the run started (if any)."""

    removed: list[str] = field(default_factory=list)  # element ids (m-…, s-…) of the old version
    run: Run | None = None
    question: Message | None = None  # a new question (edit), to put on the page
    shown: list[Message | RunStep] = field(default_factory=list)  # the version now current


# --- reading ------------------------------------------------------------------------------------
def question_of(run: Run | str) -> str | None:
    run_id = run if isinstance(run, str) else run.id
    return ChatAnswer.objects.filter(run_id=run_id).values_list("question_id", flat=True).first()


def _chains(question_ids: Iterable[str]) -> dict[str, list[list[str]]]:
    """Per question, its answer versions: chains of run ids (a root run and its continuations)
    that wrote at least one message, oldest version first."""
    rows = list(
        ChatAnswer.objects.filter(question_id__in=set(question_ids)).values_list(
            "question_id", "run_id", "continues_id"
        )
    )
    with_messages = set(
        Message.objects.filter(run_id__in=[r for _, r, _ in rows]).values_list("run_id", flat=True)
    )
    out: dict[str, list[list[str]]] = {}
    by_question: dict[str, list[tuple[str, str | None]]] = {}
    for q, r, c in rows:
        by_question.setdefault(q, []).append((r, c))
    for q, items in by_question.items():
        next_of = {c: r for r, c in items if c}
        chains = []
        for root, cont in sorted(items):
            if cont:
                continue
            chain = [root]
            while chain[-1] in next_of:
                chain.append(next_of[chain[-1]])
            if any(r in with_messages for r in chain):
                chains.append(chain)
        out[q] = chains
    return out


def pagers(messages: list[Message]) -> dict[str, Pager]:
    """The "< i/n >" pager of the messages of a page that have other versions, by message id: a question
    that was edited, and the first message of an answer that was regenerated."""
    out: dict[str, Pager] = {}
    groups = {m.version_group for m in messages if m.role == "user" and m.version_group}
    if groups:
        members: dict[str, list[str]] = {}
        for mid, group in (
            Message.objects.filter(role="user", version_group__in=groups)
            .order_by("id")
            .values_list("id", "version_group")
        ):
            members.setdefault(group, []).append(mid)
        for m in messages:
            ids = members.get(m.version_group, [])
            if m.role == "user" and len(ids) > 1 and m.id in ids:
                out[m.id] = Pager(ids.index(m.id) + 1, len(ids))
    answer_runs = {m.run_id for m in messages if m.role == "assistant" and m.run_id}
    if answer_runs:
        questions = dict(
            ChatAnswer.objects.filter(run_id__in=answer_runs).values_list("run_id", "question_id")
        )
        chains = _chains(questions.values())
        seen: set[tuple[str, int]] = set()
        for m in messages:
            q = questions.get(m.run_id or "")
            versions = chains.get(q or "", [])
            if len(versions) < 2:
                continue
            index = next((i for i, chain in enumerate(versions) if m.run_id in chain), None)
            if index is None or (q or "", index) in seen:
                continue
            seen.add((q or "", index))
            out[m.id] = Pager(index + 1, len(versions))
    return out


def _latest_question(thread: Thread) -> Message | None:
    return Message.objects.filter(thread=thread, role="user", superseded=False).order_by("-id").first()


def _elements(messages: Iterable[Message], run_ids: Iterable[str]) -> list[str]:
    steps = RunStep.objects.filter(run_id__in=set(run_ids), type="tool_calls").values_list("id", flat=True)
    return [f"m-{m.id}" for m in messages] + [f"s-{s}" for s in steps]


def _current_answer(question_id: str) -> tuple[list[Message], list[str]]:
    """The question's current answer: its messages that are not superseded, and their runs."""
    chains = _chains([question_id]).get(question_id, [])
    run_ids = [r for chain in chains for r in chain]
    msgs = list(Message.objects.filter(run_id__in=run_ids, superseded=False).order_by("id"))
    return msgs, sorted({m.run_id for m in msgs if m.run_id})


def _supersede(messages: list[Message], value: bool = True) -> None:
    Message.objects.filter(id__in=[m.id for m in messages]).update(superseded=value)


# --- changing -----------------------------------------------------------------------------------
BUSY = "The assistant is still replying. Wait for it, or press Stop."


def _lock(thread: Thread) -> None:
    try:
        threads.lock_idle(thread)
    except ThreadBusy as exc:
        raise VersionError(BUSY, status=409) from exc


def _start(thread: Thread, assistant: Assistant, question: Message, **kwargs: Any) -> Run:
    continues = kwargs.pop("continues", None)
    try:
        # Every version is a chat reply: nobody can answer its function calls (runs/tool_calls.py).
        run = runs.start_run(thread, assistant, origin=RunOrigin.CHAT, **kwargs)
    except ThreadBusy as exc:
        raise VersionError(BUSY, status=409) from exc
    ChatAnswer.objects.create(run=run, question=question, continues=continues)
    return run


def record_answer(run: Run, question: Message) -> None:
    ChatAnswer.objects.create(run=run, question=question)


def regenerate(thread: Thread, assistant: Assistant, message_id: str = "") -> Change:
    """A new answer to the latest question; the answer it replaces stays as a version. With
    `message_id`, that must be a message of the latest answer (the one the user pressed it on)."""
    with transaction.atomic():
        _lock(thread)
        question = _latest_question(thread)
        if question is None:
            raise VersionError("There is no question to answer again.")
        old, old_runs = _current_answer(question.id)
        if message_id and message_id not in {m.id for m in old}:
            raise VersionError("Only the latest reply can be regenerated.")
        _supersede(old)
        run = _start(thread, assistant, question)
        return Change(removed=_elements(old, old_runs), run=run)


def edit(thread: Thread, assistant: Assistant, message_id: str, text: str) -> Change:
    """Replace the latest question with an edited one and answer it; the old pair stays a version."""
    with transaction.atomic():
        _lock(thread)
        question = _latest_question(thread)
        if question is None or question.id != message_id:
            raise VersionError("Only your latest message can be edited.")
        old, old_runs = _current_answer(question.id)
        root = question.version_group or question.id
        _supersede([question, *old])
        if not question.version_group:
            Message.objects.filter(id=question.id).update(version_group=root)
        attached = [a for a in question.attachments or [] if isinstance(a, dict) and a.get("file_id")]
        images = vision.image_parts(question.content or [])
        # The edited question keeps the files and images the old one had, those that still exist.
        image_ids = [p["image_file"]["file_id"] for p in images if p["type"] == "image_file"]
        live = set(
            lookups.live_files(thread.owner)
            .filter(id__in=[a["file_id"] for a in attached] + image_ids)
            .values_list("id", flat=True)
        )
        kept = [p for p in images if p["type"] == "image_url" or p["image_file"]["file_id"] in live]
        fields = {
            "role": "user",
            "content": [{"type": "text", "text": text}, *kept] if kept else text,
            "attachments": [a for a in attached if a["file_id"] in live],
        }
        threads.check_message(thread.owner, fields)
        new_question = threads.insert_message(thread, fields)
        Message.objects.filter(id=new_question.id).update(version_group=root)
        new_question.version_group = root
        run = _start(thread, assistant, new_question)
        return Change(removed=_elements([question, *old], old_runs), run=run, question=new_question)


def continue_reply(thread: Thread, assistant: Assistant) -> Change:
    """After Stop: a run that goes on from the stopped reply, as part of the same version."""
    with transaction.atomic():
        _lock(thread)
        last = Run.objects.filter(thread=thread).order_by("-id").first()
        question_id = question_of(last) if last is not None else None
        if last is None or last.status != Run.Status.CANCELLED or question_id is None:
            raise VersionError("There is no stopped reply to continue.")
        if not Message.objects.filter(run=last, superseded=False).exists():
            raise VersionError("The stopped reply had no text yet; regenerate it instead.")
        question = Message.objects.get(id=question_id)
        run = _start(
            thread, assistant, question, continues=last, additional_instructions=CONTINUE_INSTRUCTIONS
        )
        return Change(run=run)


def select(thread: Thread, message_id: str, index: int) -> Change:
    """Make version `index` (1-based) of the message's question or answer the current one."""
    with transaction.atomic():
        _lock(thread)
        message = Message.objects.filter(id=message_id, thread=thread, superseded=False).first()
        if message is None:
            raise VersionError("That message is not in this conversation any more.", status=404)
        if message.role == "user":
            return _select_question(thread, message, index)
        return _select_answer(message, index)


def _select_question(thread: Thread, message: Message, index: int) -> Change:
    group = message.version_group or message.id
    versions = list(
        Message.objects.filter(thread=thread, role="user")
        .filter(Q(id=group) | Q(version_group=group))
        .order_by("id")
    )
    if not 1 <= index <= len(versions):
        raise VersionError("No such version.", status=404)
    target = versions[index - 1]
    if target.id == message.id:
        return Change()
    old, old_runs = _current_answer(message.id)
    _supersede([message, *old])
    chains = _chains([target.id]).get(target.id, [])
    new_runs = chains[-1] if chains else []
    new = list(Message.objects.filter(run_id__in=new_runs).order_by("id"))
    _supersede([target, *new], False)
    return Change(removed=_elements([message, *old], old_runs), shown=_items([target, *new], new_runs))


def _select_answer(message: Message, index: int) -> Change:
    question_id = question_of(message.run_id or "")
    chains = _chains([question_id]).get(question_id or "", []) if question_id else []
    if not 1 <= index <= len(chains):
        raise VersionError("No such version.", status=404)
    target = chains[index - 1]
    if message.run_id in target:
        return Change()
    old, old_runs = _current_answer(question_id or "")
    _supersede(old)
    new = list(Message.objects.filter(run_id__in=target).order_by("id"))
    _supersede(new, False)
    return Change(removed=_elements(old, old_runs), shown=_items(new, target))


def _items(messages: list[Message], run_ids: Iterable[str]) -> list[Message | RunStep]:
    for m in messages:
        m.superseded = False
    steps = list(RunStep.objects.filter(run_id__in=set(run_ids), type="tool_calls"))
    merged: list[Message | RunStep] = [*messages, *steps]
    merged.sort(key=lambda x: (x.created_at, x.id.split("_", 1)[-1]))
    return merged
