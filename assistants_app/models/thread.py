from __future__ import annotations

from django.conf import settings
from django.db import models

from assistants_app.ids import IdField, new_message_id, new_thread_id


class Thread(models.Model):
    id = IdField(default=new_thread_id)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="threads")
    created_at = models.DateTimeField(auto_now_add=True)
    metadata = models.JSONField(default=dict, blank=True)
    tool_resources = models.JSONField(default=dict, blank=True)
    # The chat product keeps one live thread per user; "new conversation" archives the old one.
    is_chat = models.BooleanField(default=False)
    archived_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner"],
                condition=models.Q(is_chat=True, archived_at__isnull=True),
                name="one_live_chat_thread_per_user",
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

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["thread", "id"], name="message_thread_id_idx")]

    def __str__(self) -> str:
        return self.id

    @property
    def text(self) -> str:
        return "".join(
            part.get("text", {}).get("value", "") for part in self.content if part.get("type") == "text"
        )
