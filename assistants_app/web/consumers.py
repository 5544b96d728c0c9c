"""The chat page's websocket: streams the runs of the conversation a page shows, as HTML fragments.

Each socket reads the run's event log itself (runs/stream.follow) from cursor "": the log, not the
channel layer, carries every delta, so a socket that connects late, reconnects or shares the user
with another tab sees the whole reply exactly once (app.js replaces an element that a replay sends
again). The channel layer only carries small control notices ("run started", "conversation
deleted") between one user's sockets; losing one costs liveness in another tab, never text, because
every socket also looks for the active run when it connects, and a reconnecting page names the runs
it was showing (a server restart may have ended them: follow() then reports their end from the
database).

Text deltas are buffered and rendered as Markdown at most every CHAT_RENDER_INTERVAL_MS per socket
(web/live.py); a finished message is rendered from its row, exactly as the history view renders it,
and announced once to screen readers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from html import unescape
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.utils.html import escape, strip_tags
from django.utils.text import Truncator

from assistants_app.asyncdb import db
from assistants_app.runs.events import TERMINAL_RUN_EVENTS
from assistants_app.runs.stream import follow
from assistants_app.services import chat, chat_decorations

from . import notices
from .fragments import Bubble, Op, bubble, merge, render_message, run_controls, run_notice, upsert
from .live import EventRenderer

if TYPE_CHECKING:
    from assistants_app.models import Message

# At most this many run ids a reconnecting page may name.
MAX_RESUME = 8

log = logging.getLogger(__name__)


# How long the log may stay silent before follow() checks the run row (a crashed publisher, a log
# lost with a restarted process). Each silent socket costs one query per interval: a thousand
# sockets waiting on queued runs at 1 s would be a thousand queries a second.
CHECK_EVERY = 2.0


class ChatConsumer(AsyncWebsocketConsumer):  # type: ignore[misc]  # channels has no type hints
    async def connect(self) -> None:
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close(code=4401)  # before accept(): the handshake is refused
            return
        self.user = user
        self.group = notices.user_group(user.pk)
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        self.tab = query.get("tab", [""])[0][:64]
        page_run = query.get("run", [""])[0]
        self.thread_id = query.get("thread", [""])[0][:40]
        self.outbox: asyncio.Queue[Op] = asyncio.Queue()
        self.runs: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self.queued: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []
        self._flush_at: asyncio.TimerHandle | None = None
        self._rendering: asyncio.Future[None] | None = None
        self._last_flush = 0.0
        self._interval = settings.CHAT_RENDER_INTERVAL_MS / 1000
        # Join the group before looking for the active run: a run started in between is then
        # announced by the notice, or found by the lookup, or both (duplicates are ignored). Both
        # happen before accept(), so a client whose socket is open is already in the group.
        await self.channel_layer.group_add(self.group, self.channel_name)
        name, run_ids = await db(self._initial_state, pool="readers")(page_run)
        self.renderer = EventRenderer(name)
        await self.accept()
        for run_id in run_ids:
            # A run the page did not know about started after the page was rendered: its question
            # may be missing from the page too (app.js replaces it if it is not).
            self._enqueue(run_id, with_question=run_id != page_run)

    async def disconnect(self, code: int) -> None:
        if getattr(self, "_flush_at", None) is not None:
            self._flush_at.cancel()  # type: ignore[union-attr]
        if getattr(self, "_rendering", None) is not None:
            self._rendering.cancel()  # type: ignore[union-attr]
        for task in getattr(self, "tasks", []):
            task.cancel()
        for task in getattr(self, "tasks", []):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if hasattr(self, "group"):
            await self.channel_layer.group_discard(self.group, self.channel_name)

    # --- from the browser ----------------------------------------------------------------------
    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            payload = json.loads(text_data or "")
        except ValueError:
            return
        if not isinstance(payload, dict):
            return
        wanted = payload.get("follow")
        # A reconnecting page names the runs it was showing as active: follow each to its end.
        resume = payload.get("resume")
        ids = [wanted] if isinstance(wanted, str) else []
        if isinstance(resume, list):
            ids += [r for r in resume[:MAX_RESUME] if isinstance(r, str)]
        for run_id in ids:
            if run_id in self.queued:
                continue
            run = await db(chat.user_run, pool="readers")(self.user, run_id)
            if run is None or (self.thread_id and run.thread_id != self.thread_id):
                # Another user's run, or none: say nothing about which.
                self._post(run_notice("That reply can't be shown here."))
                continue
            self._enqueue(run.id)

    # --- from the user's other requests and sockets (channel layer) -----------------------------
    async def chat_run_started(self, event: dict[str, Any]) -> None:
        # The tab that posted asks for the run itself once its own bubble is on the page; following
        # it from here could put the reply above the question.
        if event.get("tab") and event.get("tab") == self.tab:
            return
        if self.thread_id and event.get("thread_id") and event["thread_id"] != self.thread_id:
            return  # a run in another of the user's conversations
        for element_id in event.get("removed") or []:
            if isinstance(element_id, str) and element_id[:2] in ("m-", "s-") and element_id[2:].isascii():
                self._post(f'<div hx-swap-oob="delete:#{escape(element_id)}"></div>')
        self._enqueue(str(event["run_id"]), with_question=True)

    async def chat_deleted(self, event: dict[str, Any]) -> None:
        if event.get("thread_id") != self.thread_id:
            return
        self._post(run_controls(None))
        self._post(run_notice("This conversation was deleted in another window.", kind="info"))

    # -------------------------------------------------------------------------------------------
    def _post(self, op: Op) -> None:
        self._start_tasks()
        self.outbox.put_nowait(op)

    def _enqueue(self, run_id: str, *, with_question: bool = False) -> None:
        if run_id in self.queued:
            return
        self.queued.add(run_id)
        self._start_tasks()
        self.runs.put_nowait((run_id, with_question))

    def _start_tasks(self) -> None:
        # Started on first use: an idle socket (most of them) costs no tasks at all.
        if not self.tasks:
            self.tasks = [asyncio.ensure_future(self._sender()), asyncio.ensure_future(self._follower())]

    def _initial_state(self, page_run: str) -> tuple[str, list[str]]:
        self.thread_id, run_ids = chat.runs_to_follow(self.user, self.thread_id, page_run)
        return chat.assistant_name(), run_ids

    def _run_start(self, run_id: str, with_question: bool) -> tuple[str, str]:
        """The name of the assistant answering (conversations pick theirs), and the question."""
        name = chat.run_assistant_name(run_id)
        msg = chat.question_of(run_id) if with_question else None
        return name, upsert(render_message(bubble(msg), name)) if msg else ""

    def _from_database(self, run_id: str) -> list[Op]:
        """The run's outcome from its rows, for when its event log is gone (retention, restart)."""
        return self._rendered(chat.run_messages(run_id))

    def _rendered(self, msgs: list[Message], deco: chat_decorations.Decorations | None = None) -> list[Op]:
        if deco is None:
            deco = chat_decorations.decorations(self.user, msgs)
        return [self._op(bubble(m, deco)) for m in msgs]

    def _op(self, view: Bubble) -> Op:
        return upsert(render_message(view, self.renderer.assistant_name))

    def _final_message(self, message_id: str) -> tuple[list[Op], str]:
        """A finished reply rendered from its row (the history view's rendering), and its words for
        the screen-reader announcement."""
        msg = chat.message(message_id)
        if msg is None:
            return [], ""
        deco = chat_decorations.decorations(self.user, [msg])  # once: five queries
        view = bubble(msg, deco)
        ops = [self._op(view)]
        name = deco.assistant_names.get(msg.assistant_id or "")
        who = name or self.renderer.assistant_name
        # The words are the reply's rendered text (rendered once: a long reply's Markdown costs
        # milliseconds). strip_tags leaves entities: unescape so that the announcement (escaped
        # once, below) reads "<b>" where the reply shows "<b>", not "&lt;b&gt;".
        words = Truncator(" ".join(unescape(strip_tags(view.html)).split())).chars(300)
        return ops, f"{who} replied: {words}" if words else f"{who} replied."

    async def _follower(self) -> None:
        while True:
            run_id, with_question = await self.runs.get()
            name, question = await db(self._run_start, pool="readers")(run_id, with_question)
            self.renderer.assistant_name = name
            if question:
                self.outbox.put_nowait(question)
            saw_start = False
            try:
                async for ev in follow(run_id, "", stop_on=TERMINAL_RUN_EVENTS, check_every=CHECK_EVERY):
                    saw_start = saw_start or ev.event == "thread.run.created"
                    if not saw_start and ev.event in TERMINAL_RUN_EVENTS:
                        for op in await db(self._from_database, pool="readers")(run_id):
                            self.outbox.put_nowait(op)
                    if ev.event in ("thread.message.completed", "thread.message.incomplete") and (
                        ev.data.get("role") == "assistant"
                    ):
                        await self._finished(ev.data)
                        continue
                    for op in self.renderer.render(ev.event, ev.data):
                        self.outbox.put_nowait(op)
                    if self.renderer.pending:
                        self._schedule_flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following run %s failed", run_id)
                self.outbox.put_nowait(run_notice("Lost track of the reply; reload the page to see it."))

    async def _finished(self, data: dict[str, Any]) -> None:
        self.renderer.finish(data["id"])
        ops, words = await db(self._final_message, pool="readers")(data["id"])
        if not ops:  # the row is gone (the conversation was deleted meanwhile)
            ops = self.renderer.render("thread.message.completed", data)
        for op in ops:
            self.outbox.put_nowait(op)
        if words:
            self.outbox.put_nowait(f'<div hx-swap-oob="innerHTML:#announcer"><p>{escape(words)}</p></div>')

    def _schedule_flush(self) -> None:
        """Render buffered text now if the last render is older than the interval, else once the
        interval is up: at most one render per interval, and the first text shows at once. Renders
        are planned on a fixed grid (last planned time + interval), so loop latency does not
        stretch the interval and the rate stays at 1/interval while text keeps coming."""
        if self._flush_at is not None:
            return
        loop = asyncio.get_running_loop()
        planned = max(loop.time(), self._last_flush + self._interval)
        self._flush_at = loop.call_at(planned, self._flush, planned)

    def _flush(self, planned: float) -> None:
        self._flush_at = None
        if self._rendering is not None and not self._rendering.done():
            # The previous render is still running: try again one interval later.
            self._flush_at = asyncio.get_running_loop().call_at(
                planned + self._interval, self._flush, planned + self._interval
            )
            return
        self._last_flush = planned
        ids = self.renderer.take_dirty()
        if not ids:
            return
        if self.renderer.cheap(ids):
            # A short render costs about what a trip to a thread does: that trip, per socket and
            # interval, was the largest single cost of a streaming chat (docs/benchmarks.md).
            self._post_partials(self.renderer.partials(ids))
        else:
            self._rendering = asyncio.ensure_future(self._render_partials(ids))

    async def _render_partials(self, ids: list[str]) -> None:
        # Off the event loop: highlighting a long code block must not stall every other socket.
        self._post_partials(await asyncio.to_thread(self.renderer.partials, ids))

    def _post_partials(self, rendered: list[tuple[str, list[Op]]]) -> None:
        for msg_id, ops in rendered:
            if self.renderer.is_live(msg_id):  # not finished meanwhile (its final render is out)
                for op in ops:
                    self.outbox.put_nowait(op)

    async def _sender(self) -> None:
        # Everything already waiting goes out as one frame: a replay after reconnect is a few large
        # frames instead of thousands of small ones, and live deltas still leave at once.
        while True:
            ops = [await self.outbox.get()]
            while not self.outbox.empty():
                ops.append(self.outbox.get_nowait())
            await self.send(text_data=merge(ops))
