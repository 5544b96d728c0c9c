"""The model ids offered on the assistant form, asked of the assistant's backend with a short deadline.

The admin page must never hang on a slow or dead upstream: the question gets ADMIN_LIST_MODELS_TIMEOUT
seconds (2 by default), and any failure means "no list" (the form then shows a free-text input).
Asking and remembering the answers is services/models.py's, shared with /v1/models, so that the POST
after a GET, or a re-render after a validation error, does not wait again.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.conf import settings

from assistants_app.backends import endpoint_for
from assistants_app.services import models

if TYPE_CHECKING:
    from assistants_app.models import Assistant


def timeout_seconds() -> float:
    return float(settings.ADMIN_LIST_MODELS_TIMEOUT)


def model_choices(assistant: Assistant | None) -> list[str]:
    """The backend's model ids, or [] if it did not answer in time (or is not configured)."""
    backend = endpoint_for(assistant)
    if backend is None:
        return []
    listed = models.endpoint_models([backend], timeout_seconds())[backend]
    return sorted({m["id"] for m in listed or []})


def clear_cache() -> None:
    models.clear_cache()
