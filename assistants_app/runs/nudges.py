"""Wake-ups and cancels for the executors: "a run is queued" and "cancel this run".

Executors in this process are told directly; with REDIS_URL, those in other processes through a
Redis pub/sub channel. These are latency optimisations only: executors also poll the database
(RUN_POLL_SECONDS), so a lost nudge delays a run by at most one poll interval and never loses it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import threading
from typing import TYPE_CHECKING, Any

from django.conf import settings

if TYPE_CHECKING:
    from .executor import Executor

log = logging.getLogger(__name__)
CHANNEL = "assistants:runs:control"

_local: list[Executor] = []
_lock = threading.Lock()
_publishers: dict[str, Any] = {}  # REDIS_URL -> a sync client, made on first use


def register(executor: Executor) -> None:
    with _lock:
        _local.append(executor)


def unregister(executor: Executor) -> None:
    with _lock:
        if executor in _local:
            _local.remove(executor)


def _publisher(url: str) -> Any:
    with _lock:
        client = _publishers.get(url)
        if client is None:
            import redis

            client = _publishers[url] = redis.Redis.from_url(url)
        return client


def _origin() -> str:
    """This process, as its nudges say: its own listeners skip them (its executors were told
    directly), so a run started here does not wake them twice. Read per call: a forked child has
    its own pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _redis_publish(message: dict[str, str]) -> None:
    if not settings.REDIS_URL:
        return
    try:
        _publisher(settings.REDIS_URL).publish(CHANNEL, json.dumps({**message, "from": _origin()}))
    except Exception:
        log.warning("could not publish %s to Redis", message, exc_info=True)


def notify_queued() -> None:
    with _lock:
        executors = list(_local)
    for ex in executors:
        ex.wake()
    _redis_publish({"type": "queued"})


def notify_cancel(run_id: str) -> None:
    with _lock:
        executors = list(_local)
    for ex in executors:
        ex.request_cancel(run_id)
    _redis_publish({"type": "cancel", "run_id": run_id})


async def listen(executor: Executor) -> None:
    """Relay Redis nudges to this executor (external mode); returns at once without Redis."""
    if not settings.REDIS_URL:
        return
    import redis.asyncio as aredis

    while True:
        client = aredis.Redis.from_url(settings.REDIS_URL, socket_timeout=None)
        try:
            pubsub = client.pubsub()
            await pubsub.subscribe(CHANNEL)
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                data = json.loads(message["data"])
                if data.get("from") == _origin():
                    continue
                if data.get("type") == "queued":
                    executor.wake()
                elif data.get("type") == "cancel":
                    executor.request_cancel(data["run_id"])
        except asyncio.CancelledError:
            await client.aclose()
            raise
        except Exception:
            log.warning("Redis control listener failed; retrying", exc_info=True)
            await asyncio.sleep(1)
        finally:
            await client.aclose()
