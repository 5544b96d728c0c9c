"""/v1/threads/{thread_id}/messages"""

from __future__ import annotations

from typing import Any

from assistants_app.models import Message
from assistants_app.serializers import message_obj
from assistants_app.services import lookups, threads

from . import request_specs
from .pagination import page
from .routing import Ctx, Operation


def create(ctx: Ctx, thread_id: str) -> dict[str, Any]:
    thread = lookups.get_thread(ctx.user, thread_id)
    return message_obj(threads.post_message(thread, **ctx.body))


def list_(ctx: Ctx, thread_id: str) -> dict[str, Any]:
    thread = lookups.get_thread(ctx.user, thread_id)
    qs = Message.objects.filter(thread=thread)
    if ctx.query.get("run_id"):
        qs = qs.filter(run_id=ctx.query["run_id"])
    return page(qs, ctx.query, message_obj)


def retrieve(ctx: Ctx, thread_id: str, message_id: str) -> dict[str, Any]:
    return message_obj(lookups.get_message(ctx.user, thread_id, message_id))


def update(ctx: Ctx, thread_id: str, message_id: str) -> dict[str, Any]:
    message = lookups.get_message(ctx.user, thread_id, message_id)
    return message_obj(threads.set_metadata(message, ctx.body.get("metadata")))  # type: ignore[arg-type]


def delete(ctx: Ctx, thread_id: str, message_id: str) -> dict[str, Any]:
    threads.delete_message(lookups.get_message(ctx.user, thread_id, message_id))
    return {"id": message_id, "object": "thread.message.deleted", "deleted": True}


P = "/threads/{thread_id}/messages"
ITEM = "/threads/{thread_id}/messages/{message_id}"
T = ("Messages",)
OPERATIONS = [
    Operation(
        "POST",
        P,
        create,
        "createMessage",
        "Create a message",
        "Message",
        body=request_specs.MESSAGE_CREATE,
        tags=T,
    ),
    Operation(
        "GET",
        P,
        list_,
        "listMessages",
        "List messages",
        "MessageList",
        query=request_specs.MESSAGE_LIST_QUERY,
        tags=T,
    ),
    Operation("GET", ITEM, retrieve, "getMessage", "Retrieve a message", "Message", tags=T),
    Operation(
        "POST",
        ITEM,
        update,
        "modifyMessage",
        "Modify a message's metadata",
        "Message",
        body=request_specs.MESSAGE_UPDATE,
        tags=T,
    ),
    Operation("DELETE", ITEM, delete, "deleteMessage", "Delete a message", "MessageDeleted", tags=T),
]
