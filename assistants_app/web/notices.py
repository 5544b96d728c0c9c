"""Control notices between one user's chat sockets ("a run started", "the conversation was reset").

They go through the channel layer, which may drop them: every socket also looks for the active run
when it (re)connects, so a lost notice costs only liveness in another tab, never text. Deltas never
go this way (the run's event log carries them).
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

log = logging.getLogger(__name__)


def user_group(user_id: Any) -> str:
    """The channel-layer group of one user's chat sockets."""
    return f"chat.user.{user_id}"


def notify(user_id: Any, message: dict[str, Any]) -> None:
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(user_group(user_id), message)
    except Exception:
        log.warning("could not notify %s", user_group(user_id), exc_info=True)
