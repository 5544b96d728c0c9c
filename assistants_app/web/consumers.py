"""The chat page's websocket: streams the user's runs as HTML fragments.

Each socket reads the run's event log itself (runs/stream.follow) from cursor "": the log, not the
channel layer, carries every delta, so a socket that connects late, reconnects or shares the user
with another tab sees the whole reply exactly once (app.js replaces an element that a replay sends
again). The channel layer only carries small control notices ("run started", "conversation reset")
between one user's sockets; losing one costs liveness in another tab, never text, because every
socket also looks for the active run when it connects.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any
from urllib.parse import parse_qs

from channels.generic.websocket import AsyncWebsocketConsumer

from assistants_app.asyncdb import db
from assistants_app.runs.events import TERMINAL_RUN_EVENTS
from assistants_app.runs.stream import follow
from assistants_app.services import chat

from . import notices
from .fragments import EventRenderer, Op, bubble, merge, render_message, run_controls, run_notice, upsert

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
        self.outbox: asyncio.Queue[Op] = asyncio.Queue()
        self.runs: asyncio.Queue[tuple[str, bool]] = asyncio.Queue()
        self.queued: set[str] = set()
        self.tasks: list[asyncio.Task[None]] = []
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
        run_id = payload.get("follow") if isinstance(payload, dict) else None
        if not isinstance(run_id, str) or run_id in self.queued:
            return
        run = await db(chat.user_run, pool="readers")(self.user, run_id)
        if run is None:
            # Another user's run, or none: say nothing about which.
            self._post(run_notice("That reply can't be shown here."))
            return
        self._enqueue(run.id)

    # --- from the user's other requests and sockets (channel layer) -----------------------------
    async def chat_run_started(self, event: dict[str, Any]) -> None:
        # The tab that posted asks for the run itself once its own bubble is on the page; following
        # it from here could put the reply above the question.
        if event.get("tab") and event.get("tab") == self.tab:
            return
        self._enqueue(str(event["run_id"]), with_question=True)

    async def chat_reset(self, event: dict[str, Any]) -> None:
        if event.get("tab") and event.get("tab") == self.tab:
            return
        self._post('<div id="messages" hx-swap-oob="innerHTML"></div>')
        self._post(run_controls(None))
        self._post(run_notice("A new conversation was started in another window.", kind="info"))

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
        return chat.assistant_name(), chat.runs_to_follow(self.user, page_run)

    def _question(self, run_id: str) -> str:
        msg = chat.question_of(run_id)
        return upsert(render_message(bubble(msg), self.renderer.assistant_name)) if msg else ""

    def _from_database(self, run_id: str) -> list[Op]:
        """The run's outcome from its rows, for when its event log is gone (retention, restart)."""
        return [
            upsert(render_message(bubble(m), self.renderer.assistant_name)) for m in chat.run_messages(run_id)
        ]

    async def _follower(self) -> None:
        while True:
            run_id, with_question = await self.runs.get()
            if with_question:
                question = await db(self._question, pool="readers")(run_id)
                if question:
                    self.outbox.put_nowait(question)
            saw_start = False
            try:
                async for ev in follow(run_id, "", stop_on=TERMINAL_RUN_EVENTS, check_every=CHECK_EVERY):
                    saw_start = saw_start or ev.event == "thread.run.created"
                    if not saw_start and ev.event in TERMINAL_RUN_EVENTS:
                        for op in await db(self._from_database, pool="readers")(run_id):
                            self.outbox.put_nowait(op)
                    for op in self.renderer.render(ev.event, ev.data):
                        self.outbox.put_nowait(op)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("following run %s failed", run_id)
                self.outbox.put_nowait(run_notice("Lost track of the reply; reload the page to see it."))

    async def _sender(self) -> None:
        # Everything already waiting goes out as one frame: a replay after reconnect is a few large
        # frames instead of thousands of small ones, and live deltas still leave at once.
        while True:
            ops = [await self.outbox.get()]
            while not self.outbox.empty():
                ops.append(self.outbox.get_nowait())
            await self.send(text_data=merge(ops))
