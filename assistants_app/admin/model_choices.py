"""The model ids offered on the assistant form, asked of the assistant's backend with a short deadline.

The admin page must never hang on a slow or dead upstream: the question gets ADMIN_LIST_MODELS_TIMEOUT
seconds (2 by default) on its own thread and event loop, and any failure means "no list" (the form
then shows a free-text input). Answers are remembered briefly so that the POST after a GET, or a
re-render after a validation error, does not wait again.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import threading
import time
from typing import TYPE_CHECKING

from django.conf import settings

if TYPE_CHECKING:
    from assistants_app.models import Assistant

CACHE_SECONDS = 60.0
FAILURE_CACHE_SECONDS = 15.0
_cache: dict[str, tuple[float, list[str]]] = {}
_lock = threading.Lock()


def timeout_seconds() -> float:
    return float(settings.ADMIN_LIST_MODELS_TIMEOUT)


def backend_for(assistant: Assistant | None) -> tuple[str, str] | None:
    """(base_url, api_key) the assistant's runs would use, or None when nothing is configured."""
    if settings.MODEL_BACKEND != "openai":
        return None  # the fake backend has no model list, and tests must not reach any network
    from assistants_app.backends.openai_compat import OPENAI_DEFAULT_BASE_URL

    base_url = (assistant.backend_base_url if assistant else "") or settings.OPENAI_BASE_URL
    key_env = assistant.backend_api_key_env if assistant else ""
    api_key = os.environ.get(key_env, "") if key_env else settings.OPENAI_API_KEY
    if not base_url and not api_key:
        return None
    return (base_url or OPENAI_DEFAULT_BASE_URL), api_key


def model_choices(assistant: Assistant | None) -> list[str]:
    """The backend's model ids, or [] if it did not answer in time (or is not configured)."""
    backend = backend_for(assistant)
    if backend is None:
        return []
    base_url, api_key = backend
    key = hashlib.sha256(f"{base_url}\0{api_key}".encode()).hexdigest()
    now = time.monotonic()
    with _lock:
        hit = _cache.get(key)
    if hit is not None and hit[0] > now:
        return hit[1]
    models = _ask(base_url, api_key, timeout_seconds())
    ttl = CACHE_SECONDS if models else FAILURE_CACHE_SECONDS
    with _lock:
        _cache[key] = (time.monotonic() + ttl, models)
    return models


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _ask(base_url: str, api_key: str, timeout: float) -> list[str]:
    result: list[str] = []

    async def fetch() -> None:
        from assistants_app.backends.openai_compat import close_clients, list_models

        try:
            result.extend(await asyncio.wait_for(list_models(base_url, api_key), timeout))
        except TimeoutError:
            pass
        finally:
            await close_clients()

    # A thread of its own: the caller may be a sync view running under an event loop (ASGI), where
    # asyncio.run() is not allowed; a daemon thread also cannot keep a stuck request alive.
    worker = threading.Thread(target=lambda: asyncio.run(fetch()), name="admin-list-models", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return list(result) if not worker.is_alive() else []
