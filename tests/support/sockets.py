"""The chat socket under test: a WebsocketCommunicator on ChatConsumer as `user`, and reading its
frames until a condition on everything received so far holds."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from channels.testing import WebsocketCommunicator

from assistants_app.web.consumers import ChatConsumer


def socket(user: Any, query: str = "") -> WebsocketCommunicator:
    comm = WebsocketCommunicator(ChatConsumer.as_asgi(), f"/ws/chat/{query}")
    comm.scope["user"] = user
    return comm


async def frames_until(
    comm: WebsocketCommunicator, done: Callable[[str], bool], within: float = 15
) -> list[str]:
    """The frames received until `done(all text so far)` holds."""
    frames: list[str] = []
    deadline = time.monotonic() + within
    while not done("".join(frames)):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"timed out; got {''.join(frames)[-2000:]}"
        frames.append(await comm.receive_from(timeout=remaining))
    return frames
