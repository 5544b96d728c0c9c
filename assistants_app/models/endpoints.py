from __future__ import annotations

from django.db import models


class FunctionEndpoint(models.Model):
    """An HTTP endpoint the engine calls when the model calls one of an assistant's function tools,
    instead of waiting for a client's submit_tool_outputs (tools/function_endpoints/).

    Staff-only: it lives beside the assistant, never inside its `tools`, so API clients see exactly
    the function definitions they sent. Header values are never stored, only the NAMES of the
    environment variables that hold them.
    """

    class Method(models.TextChoices):
        POST = "POST", "POST (the arguments as a JSON body)"
        GET = "GET", "GET (the arguments as query parameters)"

    assistant = models.ForeignKey("Assistant", on_delete=models.CASCADE, related_name="function_endpoints")
    function_name = models.CharField(max_length=64)
    url = models.CharField(max_length=2000)
    method = models.CharField(max_length=4, choices=Method.choices, default=Method.POST)
    # {"Header-Name": "ENV_VAR_NAME"}: the variable's value is read when the call is made.
    header_env = models.JSONField(default=dict, blank=True)
    timeout_seconds = models.FloatField(default=10.0)
    max_response_bytes = models.PositiveIntegerField(default=64 * 1024)

    class Meta:
        ordering = ["assistant_id", "function_name"]
        constraints = [
            models.UniqueConstraint(
                fields=["assistant", "function_name"], name="one_endpoint_per_assistant_function"
            )
        ]

    def __str__(self) -> str:
        return f"{self.function_name} → {self.method} {self.url}"
