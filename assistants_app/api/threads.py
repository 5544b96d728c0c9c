"""/v1/threads and /v1/threads/runs (create_and_run)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase

from assistants_app import services, services_api
from assistants_app.objects import run_obj, thread_obj

from . import specs, sse
from .routing import Ctx, Operation


def create(ctx: Ctx) -> dict[str, Any]:
    return thread_obj(services_api.create_thread(ctx.user, ctx.body))


def retrieve(ctx: Ctx, thread_id: str) -> dict[str, Any]:
    return thread_obj(services.get_thread(ctx.user, thread_id))


def update(ctx: Ctx, thread_id: str) -> dict[str, Any]:
    return thread_obj(services_api.update_thread(services.get_thread(ctx.user, thread_id), ctx.body))


def delete(ctx: Ctx, thread_id: str) -> dict[str, Any]:
    services_api.delete_thread(services.get_thread(ctx.user, thread_id))
    return {"id": thread_id, "object": "thread.deleted", "deleted": True}


def create_and_run(ctx: Ctx) -> dict[str, Any] | HttpResponseBase:
    thread, run = services_api.create_and_run(ctx.user, ctx.body)
    if ctx.body.get("stream"):
        return sse.sse_response(sse.run_events(run.id, prelude=[("thread.created", thread_obj(thread))]))
    return run_obj(run)


T = ("Threads",)
OPERATIONS = [
    Operation(
        "POST",
        "/threads",
        create,
        "createThread",
        "Create a thread",
        "Thread",
        body=specs.THREAD_CREATE,
        tags=T,
    ),
    Operation("GET", "/threads/{thread_id}", retrieve, "getThread", "Retrieve a thread", "Thread", tags=T),
    Operation(
        "POST",
        "/threads/{thread_id}",
        update,
        "modifyThread",
        "Modify a thread",
        "Thread",
        body=specs.THREAD_UPDATE,
        tags=T,
    ),
    Operation(
        "DELETE", "/threads/{thread_id}", delete, "deleteThread", "Delete a thread", "ThreadDeleted", tags=T
    ),
    Operation(
        "POST",
        "/threads/runs",
        create_and_run,
        "createThreadAndRun",
        "Create a thread and run it",
        "Run",
        body=specs.CREATE_AND_RUN,
        stream=True,
        tags=("Runs",),
    ),
]
