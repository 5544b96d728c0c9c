from __future__ import annotations

from django.db import models

from assistants_app.ids import IdField, new_run_id, new_step_id


class RunStatus(models.TextChoices):
    """A run's statuses, defined here only. runs/state.py is the only writer of Run.status and
    holds the transitions between them."""

    QUEUED = "queued"
    IN_PROGRESS = "in_progress"
    REQUIRES_ACTION = "requires_action"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    FAILED = "failed"
    COMPLETED = "completed"
    INCOMPLETE = "incomplete"
    EXPIRED = "expired"


# A run in one of these holds its thread: at most one per thread (the constraint below), and the
# thread accepts no new message or run meanwhile.
ACTIVE_STATUSES: tuple[RunStatus, ...] = (
    RunStatus.QUEUED,
    RunStatus.IN_PROGRESS,
    RunStatus.REQUIRES_ACTION,
    RunStatus.CANCELLING,
)
TERMINAL_STATUSES: tuple[RunStatus, ...] = tuple(s for s in RunStatus if s not in ACTIVE_STATUSES)
# Runs that expire at expires_at unless something ends them first; the API reports expires_at for
# these only.
EXPIRING_STATUSES: tuple[RunStatus, ...] = (
    RunStatus.QUEUED,
    RunStatus.IN_PROGRESS,
    RunStatus.REQUIRES_ACTION,
)
# Runs an executor holds a lease on.
EXECUTING_STATUSES: tuple[RunStatus, ...] = (RunStatus.IN_PROGRESS, RunStatus.CANCELLING)


class RunOrigin(models.TextChoices):
    """Who started a run, which says whether anyone can answer its function calls: an API client
    can (submit_tool_outputs), the chat page cannot (runs/tool_calls.py)."""

    API = "api", "API"
    CHAT = "chat", "chat page"


class Run(models.Model):
    Status = RunStatus

    id = IdField(default=new_run_id)
    thread = models.ForeignKey("Thread", on_delete=models.CASCADE, related_name="runs")
    assistant = models.ForeignKey("Assistant", null=True, on_delete=models.SET_NULL, related_name="runs")
    assistant_ref = models.CharField(max_length=40)  # the id as created, kept if the assistant is deleted
    # Written only by assistants_app.runs.state.
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED, db_index=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    required_action = models.JSONField(null=True, blank=True)
    last_error = models.JSONField(null=True, blank=True)
    incomplete_details = models.JSONField(null=True, blank=True)
    model = models.CharField(max_length=256)
    instructions = models.TextField(blank=True, default="")
    tools = models.JSONField(default=list, blank=True)
    tool_resources = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    usage = models.JSONField(null=True, blank=True)
    temperature = models.FloatField(null=True, blank=True)
    top_p = models.FloatField(null=True, blank=True)
    max_prompt_tokens = models.IntegerField(null=True, blank=True)
    max_completion_tokens = models.IntegerField(null=True, blank=True)
    truncation_strategy = models.JSONField(default=dict, blank=True)
    response_format = models.JSONField(null=True, blank=True)
    tool_choice = models.JSONField(null=True, blank=True)
    parallel_tool_calls = models.BooleanField(default=True)
    # Execution bookkeeping (not part of the API object).
    lease_owner = models.CharField(max_length=100, blank=True, default="")
    lease_expires_at = models.DateTimeField(null=True, blank=True, db_index=True)
    attempts = models.IntegerField(default=0)
    # Set once the run has published model output: a run past this point is never retried blindly.
    streamed = models.BooleanField(default=False)
    origin = models.CharField(max_length=8, choices=RunOrigin.choices, default=RunOrigin.API)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["thread", "id"], name="run_thread_id_idx")]
        constraints = [
            models.UniqueConstraint(
                fields=["thread"],
                condition=models.Q(status__in=ACTIVE_STATUSES),
                name="one_active_run_per_thread",
            )
        ]

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES


class RunStep(models.Model):
    class Status(models.TextChoices):
        IN_PROGRESS = "in_progress"
        CANCELLED = "cancelled"
        FAILED = "failed"
        COMPLETED = "completed"
        EXPIRED = "expired"

    id = IdField(default=new_step_id)
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="steps")
    thread_id_ref = models.CharField(max_length=40)
    assistant_ref = models.CharField(max_length=40)
    type = models.CharField(max_length=20)  # message_creation | tool_calls
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.IN_PROGRESS)
    step_details = models.JSONField(default=dict)
    last_error = models.JSONField(null=True, blank=True)
    usage = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["run", "id"], name="step_run_id_idx")]

    def __str__(self) -> str:
        return self.id
