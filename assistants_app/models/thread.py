from __future__ import annotations

from typing import Any

from django.conf import settings
from django.db import connections, models, router
from django.utils import timezone

from assistants_app.ids import IdField, new_message_id, new_thread_id

# How much of a chat message's text conversation search looks at (Message.search_text).
SEARCH_TEXT_CHARS = 20_000


class Thread(models.Model):
    id = IdField(default=new_thread_id)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="threads")
    created_at = models.DateTimeField(auto_now_add=True)
    metadata = models.JSONField(default=dict, blank=True)
    tool_resources = models.JSONField(default=dict, blank=True)
    # The chat product's conversations are a user's chat threads, listed by last activity.
    is_chat = models.BooleanField(default=False)
    # No longer set (a conversation stays in the list until it is deleted); kept for old rows.
    archived_at = models.DateTimeField(null=True, blank=True)
    title = models.CharField(max_length=200, blank=True, default="")
    last_activity_at = models.DateTimeField(default=timezone.now)
    # Chat threads: the assistant the user picked for this conversation (null: the default one).
    # Checked again on every run (services/chat_assistants.py): one staff stopped offering is not used.
    chat_assistant = models.ForeignKey(
        "Assistant", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["owner", "is_chat", "-last_activity_at", "-id"], name="thread_chat_recent_idx"
            )
        ]

    def __str__(self) -> str:
        return self.id


class Message(models.Model):
    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        INCOMPLETE = "incomplete"
        COMPLETED = "completed"

    id = IdField(default=new_message_id)
    thread = models.ForeignKey(Thread, on_delete=models.CASCADE, related_name="messages")
    created_at = models.DateTimeField(auto_now_add=True)
    role = models.CharField(max_length=16)
    # A list of content parts exactly as the API returns them (text with annotations, image_file, ...).
    content = models.JSONField(default=list)
    attachments = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETED)
    incomplete_details = models.JSONField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    incomplete_at = models.DateTimeField(null=True, blank=True)
    assistant_id = models.CharField(max_length=40, null=True, blank=True)
    run = models.ForeignKey("Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="messages")
    metadata = models.JSONField(default=dict, blank=True)
    # Cached token count of the text, so that prompt building never re-tokenizes history.
    token_count = models.IntegerField(default=0)
    # An earlier version (regenerated answer, edited question): kept and shown on request, never
    # part of a prompt (runs/context.py) or of the conversation's current path.
    superseded = models.BooleanField(default=False)
    # User messages: the id of the first version of the question an edit replaces ("" = itself).
    version_group = models.CharField(max_length=40, blank=True, default="")
    # Chat threads: the lower-cased text, for conversation search (services/conversations.py).
    search_text = models.TextField(blank=True, default="", editable=False)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["thread", "id"], name="message_thread_id_idx")]

    def __str__(self) -> str:
        return self.id

    def save(self, *args: Any, **kwargs: Any) -> None:
        """Keeps `search_text` of chat messages (conversation search): on insert, and when a
        reply's final text is saved. The engine's checkpoints are queryset updates and skip this:
        only final text is indexed."""
        update_fields = kwargs.get("update_fields")
        indexed = (update_fields is None or "content" in update_fields) and (
            self.status != Message.Status.IN_PROGRESS
        )
        # A thread never changes kind. With it at hand, an API thread's message costs nothing and a
        # chat thread's carries its search text in the same statement as its text.
        known = indexed and Message.thread.is_cached(self)
        if known and self.thread.is_chat:
            self.search_text = self.index_text()
            if update_fields is not None:
                kwargs["update_fields"] = {*update_fields, "search_text"}
        super().save(*args, **kwargs)
        if indexed and not known:
            # Without it, one more UPDATE, whose join decides.
            text = self.index_text()
            Message.objects.filter(id=self.id, thread__is_chat=True).exclude(search_text=text).update(
                search_text=text
            )

    @property
    def text(self) -> str:
        return "".join(
            part.get("text", {}).get("value", "") for part in self.content if part.get("type") == "text"
        )

    def index_text(self) -> str:
        """What `search_text` holds for this message in a chat thread."""
        return self.text.casefold()[:SEARCH_TEXT_CHARS]


_CHECKPOINT_SQL: dict[str, str] = {}  # per database alias


def checkpoint_content(message_id: str, content: list[dict[str, Any]]) -> int:
    """Store the text streamed so far into an in-progress message; the rows changed (0 once the
    message has ended).

    The statement `Message.objects.filter(id=..., status=IN_PROGRESS).update(content=...)` makes,
    built once per database: every streaming run saves its text every RUN_CHECKPOINT_SECONDS, and
    Django's query building was two thirds of that save's CPU (docs/benchmarks.md, tenth session).
    The value is adapted by the field itself, as the ORM would (JSON text on SQLite, jsonb on
    PostgreSQL)."""
    alias = router.db_for_write(Message)
    connection = connections[alias]
    sql = _CHECKPOINT_SQL.get(alias)
    if sql is None:
        q = connection.ops.quote_name
        meta = Message._meta

        def col(name: str) -> str:
            field = meta.get_field(name)
            assert isinstance(field, models.Field)
            return q(str(field.column))

        sql = _CHECKPOINT_SQL[alias] = (
            f"UPDATE {q(meta.db_table)} SET {col('content')} = %s WHERE {col('id')} = %s AND {col('status')} = %s"
        )
    value = Message._meta.get_field("content").get_db_prep_save(content, connection)
    with connection.cursor() as cursor:
        cursor.execute(sql, [value, message_id, Message.Status.IN_PROGRESS])
        return int(cursor.rowcount)
