"""/v1/assistants"""

from __future__ import annotations

from typing import Any

from assistants_app.models import Assistant
from assistants_app.serializers import assistant_obj
from assistants_app.services import assistants, lookups

from . import request_specs
from .pagination import page
from .routing import Ctx, Operation


def create(ctx: Ctx) -> dict[str, Any]:
    return assistant_obj(assistants.create_assistant(ctx.user, ctx.body))


def list_(ctx: Ctx) -> dict[str, Any]:
    return page(Assistant.objects.filter(owner=ctx.user), ctx.query, assistant_obj)


def retrieve(ctx: Ctx, assistant_id: str) -> dict[str, Any]:
    return assistant_obj(lookups.get_assistant(ctx.user, assistant_id))


def update(ctx: Ctx, assistant_id: str) -> dict[str, Any]:
    assistant = lookups.get_assistant(ctx.user, assistant_id)
    return assistant_obj(assistants.update_assistant(assistant, ctx.body))


def delete(ctx: Ctx, assistant_id: str) -> dict[str, Any]:
    assistants.delete_assistant(lookups.get_assistant(ctx.user, assistant_id))
    return {"id": assistant_id, "object": "assistant.deleted", "deleted": True}


P = "/assistants"
ITEM = "/assistants/{assistant_id}"
T = ("Assistants",)
OPERATIONS = [
    Operation(
        "POST",
        P,
        create,
        "createAssistant",
        "Create an assistant",
        "Assistant",
        body=request_specs.ASSISTANT_CREATE,
        tags=T,
    ),
    Operation(
        "GET",
        P,
        list_,
        "listAssistants",
        "List assistants",
        "AssistantList",
        query=request_specs.ASSISTANT_LIST_QUERY,
        tags=T,
    ),
    Operation("GET", ITEM, retrieve, "getAssistant", "Retrieve an assistant", "Assistant", tags=T),
    Operation(
        "POST",
        ITEM,
        update,
        "modifyAssistant",
        "Modify an assistant",
        "Assistant",
        body=request_specs.ASSISTANT_UPDATE,
        tags=T,
    ),
    Operation("DELETE", ITEM, delete, "deleteAssistant", "Delete an assistant", "AssistantDeleted", tags=T),
]
