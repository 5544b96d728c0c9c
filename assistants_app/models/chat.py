"""The chat product's own rows: which question a reply answers (versions), and users' feedback."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class ChatAnswer(models.Model):
    """A chat run answers one question; regenerating adds another run (a version) for it.

    `continues` is set on the run that a "Continue" after Stop started: it extends the version of
    the run it continues instead of being a version of its own.
    """

    run = models.OneToOneField("Run", on_delete=models.CASCADE, primary_key=True, related_name="chat_answer")
    question = models.ForeignKey("Message", on_delete=models.CASCADE, related_name="chat_answers")
    continues = models.ForeignKey(
        "Run", null=True, blank=True, on_delete=models.SET_NULL, related_name="continued_by"
    )

    def __str__(self) -> str:
        return f"{self.run_id} answers {self.question_id}"


class Feedback(models.Model):
    class Rating(models.IntegerChoices):
        UP = 1, "👍"
        DOWN = -1, "👎"

    message = models.ForeignKey("Message", on_delete=models.CASCADE, related_name="feedback")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    rating = models.SmallIntegerField(choices=Rating.choices)
    comment = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-updated_at"]
        verbose_name_plural = "feedback"
        constraints = [models.UniqueConstraint(fields=["message", "user"], name="one_feedback_per_message")]

    def __str__(self) -> str:
        return f"{self.get_rating_display()} on {self.message_id}"
