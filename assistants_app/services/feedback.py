"""Thumbs up/down, with an optional comment, on a chat reply: one per user and reply, staff read them
in the admin."""

from __future__ import annotations

from typing import Any

from assistants_app.models import Feedback, Message

MAX_COMMENT_CHARS = 2000


class FeedbackError(Exception):
    def __init__(self, message: str, *, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _reply(user: Any, message_id: str) -> Message:
    if not isinstance(message_id, str) or not message_id.startswith("msg_") or len(message_id) > 40:
        raise FeedbackError("No such reply.", status=404)
    message = Message.objects.filter(
        id=message_id, role="assistant", thread__owner=user, thread__is_chat=True
    ).first()
    if message is None:
        raise FeedbackError("No such reply.", status=404)
    return message


def rate(user: Any, message_id: str, rating: str, comment: str | None = None) -> Feedback | None:
    """`rating` "up" or "down" sets it (pressing the same one again clears it: None); a comment
    given later updates the comment of the rating that is there."""
    message = _reply(user, message_id)
    value = {"up": Feedback.Rating.UP, "down": Feedback.Rating.DOWN}.get(rating)
    if value is None:
        raise FeedbackError("Rate a reply with thumbs up or down.")
    comment = (comment or "").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise FeedbackError(f"A comment has at most {MAX_COMMENT_CHARS} characters.")
    existing = Feedback.objects.filter(message=message, user=user).first()
    if existing is not None and existing.rating == value and not comment:
        existing.delete()
        return None
    row, _ = Feedback.objects.update_or_create(
        message=message,
        user=user,
        defaults={"rating": value, **({"comment": comment} if comment else {})},
    )
    return row


def ratings(user: Any, message_ids: list[str]) -> dict[str, int]:
    """The user's ratings of these replies, by message id (1 up, -1 down)."""
    if not message_ids:
        return {}
    return dict(
        Feedback.objects.filter(user=user, message_id__in=message_ids).values_list("message_id", "rating")
    )
