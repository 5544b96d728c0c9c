"""The models the configured backends offer: `/v1/models` and the admin's model field.

The endpoints asked are the default one (OPENAI_BASE_URL / OPENAI_API_KEY) and the own endpoints of
the caller's assistants (backends.endpoint_for): the ones the caller's runs can reach. Each is asked
GET {base_url}/models through the backend's one client factory (backends/client.py, fetch_models) with a
deadline, all at once, on a thread and event loop of their own, so that a request never waits on a
slow or dead upstream for longer than the deadline. An endpoint that fails is skipped (and logged),
never an error for the list. Answers are remembered for MODELS_CACHE_SECONDS per endpoint (a failure
for FAILURE_CACHE_SECONDS): SDK users call this to check their configuration, often in a loop.

This is not a model call: nothing is generated, and the upstream answers from its configuration.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
import time
from typing import Any

from django.conf import settings

from assistants_app.backends import endpoint_for
from assistants_app.errors import ServiceError
from assistants_app.models import Assistant

log = logging.getLogger(__name__)

FAILURE_CACHE_SECONDS = 15.0
Endpoint = tuple[str, str]  # (base_url, api_key)
ModelObject = dict[str, Any]  # {id, object: "model", created, owned_by}

_cache: dict[str, tuple[float, list[ModelObject] | None]] = {}
_lock = threading.Lock()


class ModelNotFound(ServiceError):
    """404, as OpenAI answers for a model id it does not serve."""

    status = 404

    def __init__(self, model_id: str) -> None:
        super().__init__(
            f"The model '{model_id}' does not exist or you do not have access to it.",
            param="model",
            code="model_not_found",
        )


def endpoints(user: Any) -> list[Endpoint]:
    """The default endpoint, then the distinct own endpoints of `user`'s assistants."""
    found: list[Endpoint] = []
    default = endpoint_for(None)
    if default is not None:
        found.append(default)
    own = (
        Assistant.objects.filter(owner=user)
        .exclude(backend_base_url="", backend_api_key_env="")
        .values_list("backend_base_url", "backend_api_key_env")
        .distinct()
    )
    for base_url, key_env in own:
        endpoint = endpoint_for(Assistant(backend_base_url=base_url, backend_api_key_env=key_env))
        if endpoint is not None and endpoint not in found:
            found.append(endpoint)
    return found


def available_models(user: Any) -> list[ModelObject]:
    """Every model the user's endpoints offer, each id once (the first endpoint naming it wins)."""
    timeout = float(settings.MODELS_LIST_TIMEOUT)
    seen: dict[str, ModelObject] = {}
    for listed in endpoint_models(endpoints(user), timeout).values():
        for model in listed or []:
            seen.setdefault(model["id"], model)
    return list(seen.values())


def get_model(user: Any, model_id: str) -> ModelObject:
    for model in available_models(user):
        if model["id"] == model_id:
            return model
    raise ModelNotFound(model_id)


def endpoint_models(wanted: list[Endpoint], timeout: float) -> dict[Endpoint, list[ModelObject] | None]:
    """Each endpoint's models, None for one that did not answer within `timeout` (or failed)."""
    now = time.monotonic()
    answers: dict[Endpoint, list[ModelObject] | None] = {}
    missing: list[Endpoint] = []
    with _lock:
        for endpoint in wanted:
            hit = _cache.get(_key(endpoint))
            if hit is not None and hit[0] > now:
                answers[endpoint] = hit[1]
            else:
                missing.append(endpoint)
    if missing:
        fetched = _ask(missing, timeout)
        with _lock:
            for endpoint in missing:
                listed = fetched.get(endpoint)
                ttl = float(settings.MODELS_CACHE_SECONDS) if listed is not None else FAILURE_CACHE_SECONDS
                _cache[_key(endpoint)] = (time.monotonic() + ttl, listed)
                answers[endpoint] = listed
    return {endpoint: answers[endpoint] for endpoint in wanted}


def clear_cache() -> None:
    with _lock:
        _cache.clear()


def _key(endpoint: Endpoint) -> str:
    # Keyed by the key too (another key may see other models), hashed so no key sits in memory twice.
    return hashlib.sha256("\0".join(endpoint).encode()).hexdigest()


def _ask(wanted: list[Endpoint], timeout: float) -> dict[Endpoint, list[ModelObject] | None]:
    result: dict[Endpoint, list[ModelObject] | None] = {}

    async def one(endpoint: Endpoint) -> None:
        from assistants_app.backends.client import fetch_models

        try:
            result[endpoint] = await asyncio.wait_for(fetch_models(*endpoint, http_timeout=timeout), timeout)
        except Exception as err:  # skipped, not fatal: the other endpoints still answer
            log.warning("could not list the models of %s: %s", endpoint[0], str(err) or type(err).__name__)

    async def all_of_them() -> None:
        from assistants_app.backends.client import private_clients

        async with private_clients():
            await asyncio.gather(*(one(endpoint) for endpoint in wanted))

    # A thread of its own: the caller may be a sync view running under an event loop (ASGI), where
    # asyncio.run() is not allowed; a daemon thread also cannot keep a stuck request alive.
    worker = threading.Thread(target=lambda: asyncio.run(all_of_them()), name="list-models", daemon=True)
    worker.start()
    worker.join(timeout + 0.5)
    return dict(result)
