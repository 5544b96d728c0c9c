"""Choosing a backend for a run. Backends are built here and nowhere else."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from django.conf import settings

from .base import Backend, BackendError

if TYPE_CHECKING:
    from assistants_app.models import Assistant

__all__ = ["Backend", "BackendError", "endpoint_for", "get_backend"]


def get_backend(assistant: Assistant | None) -> Backend:
    if settings.MODEL_BACKEND == "fake":
        from .fake import FakeBackend

        return FakeBackend()
    if settings.MODEL_BACKEND != "openai":
        raise BackendError("server_error", f"Unknown MODEL_BACKEND {settings.MODEL_BACKEND!r}; use 'openai'.")
    from .openai_compat import backend_from_settings

    base_url = assistant.backend_base_url if assistant and assistant.backend_base_url else None
    api_key = None
    if assistant and assistant.backend_api_key_env:
        api_key = os.environ.get(assistant.backend_api_key_env)
        if not api_key:
            raise BackendError(
                "server_error",
                f"Assistant {assistant.id} takes its API key from the environment variable "
                f"{assistant.backend_api_key_env}, which is not set on the worker.",
            )
    return backend_from_settings(base_url=base_url, api_key=api_key)


def endpoint_for(assistant: Assistant | None) -> tuple[str, str] | None:
    """(base_url, api_key) of the OpenAI-compatible endpoint the assistant's runs call (for None, the
    default one), to ask it things other than a completion (its model list). None when there is
    none to ask: nothing configured, or MODEL_BACKEND is not "openai" (tests must reach no network).
    A key variable that is not set gives an empty key, which the endpoint may still accept."""
    if settings.MODEL_BACKEND != "openai":
        return None
    from .openai_compat import OPENAI_DEFAULT_BASE_URL

    base_url = (assistant.backend_base_url if assistant else "") or settings.OPENAI_BASE_URL
    key_env = assistant.backend_api_key_env if assistant else ""
    api_key = os.environ.get(key_env, "") if key_env else settings.OPENAI_API_KEY
    if not base_url and not api_key:
        return None
    return (base_url or OPENAI_DEFAULT_BASE_URL), api_key
