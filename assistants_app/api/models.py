"""/v1/models: the models the configured backends offer (services/models.py)."""

from __future__ import annotations

from typing import Any

from assistants_app.services import models

from .routing import Ctx, Operation


def list_(ctx: Ctx) -> dict[str, Any]:
    return {"object": "list", "data": models.available_models(ctx.user)}


def retrieve(ctx: Ctx, model: str) -> dict[str, Any]:
    return models.get_model(ctx.user, model)


T = ("Models",)
OPERATIONS = [
    Operation(
        "GET", "/models", list_, "listModels", "List the models the backends offer", "ModelList", tags=T
    ),
    # Model ids may contain "/" (Qwen/Qwen2.5-7B-Instruct): the SDKs send it percent-encoded, and the
    # route takes the rest of the path (urls.py).
    Operation("GET", "/models/{model}", retrieve, "retrieveModel", "Retrieve a model", "Model", tags=T),
]
