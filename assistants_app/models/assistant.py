from __future__ import annotations

from django.conf import settings
from django.db import models

from assistants_app.ids import IdField, new_assistant_id


class Assistant(models.Model):
    id = IdField(default=new_assistant_id)
    # Null owner: a staff-managed assistant (the chat product's); API keys only see their own.
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="assistants"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    name = models.CharField(max_length=256, blank=True, null=True)
    description = models.CharField(max_length=512, blank=True, null=True)
    model = models.CharField(max_length=256)
    instructions = models.TextField(blank=True, null=True)
    tools = models.JSONField(default=list, blank=True)
    tool_resources = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    top_p = models.FloatField(null=True, blank=True)
    response_format = models.JSONField(null=True, blank=True)
    # The chat page's assistant; at most one (enforced by a partial unique constraint).
    is_default = models.BooleanField(default=False)
    # Per-assistant model backend; empty means the environment's OPENAI_BASE_URL / OPENAI_API_KEY.
    backend_base_url = models.CharField(max_length=500, blank=True, default="")
    backend_api_key_env = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text="Name of an environment variable holding the API key",
    )

    class AcceptsImages(models.TextChoices):
        AUTO = "auto", "Auto: if the model is known to take images"
        YES = "yes", "Yes"
        NO = "no", "No"

    # Whether the chat page offers image attachments (runs/vision.py has the known models).
    accepts_images = models.CharField(max_length=4, choices=AcceptsImages.choices, default=AcceptsImages.AUTO)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"], condition=models.Q(is_default=True), name="one_default_assistant"
            )
        ]

    def __str__(self) -> str:
        return f"{self.name or self.id} ({self.model})"
