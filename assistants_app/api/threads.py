"""/v1/threads and /v1/threads/runs (create_and_run)."""

from __future__ import annotations

from typing import Any

from django.http import HttpResponseBase

from assistants_app.serializers import run_obj, thread_obj
from assistants_app.services import lookups, runs, threads

from . import request_specs, sse
from .routing import Ctx, Operation


def create(ctx: Ctx) -> dict[str, Any]:
    return thread_obj(threads.create_thread(ctx.user, **ctx.body))


def retrieve(ctx: Ctx, thread_id: str) -> dict[str, Any]:
    return thread_obj(lookups.get_thread(ctx.user, thread_id))


def update(ctx: Ctx, thread_id: str) -> dict[str, Any]:
    return thread_obj(threads.update_thread(lookups.get_thread(ctx.user, thread_id), ctx.body))


def delete(ctx: Ctx, thread_id: str) -> dict[str, Any]:
    threads.delete_thread(lookups.get_thread(ctx.user, thread_id))
    return {"id": thread_id, "object": "thread.deleted", "deleted": True}


def create_and_run(ctx: Ctx) -> dict[str, Any] | HttpResponseBase:
    body = dict(ctx.body)
    stream = body.pop("stream", False)
    assistant = lookups.get_assistant(ctx.user, body.pop("assistant_id"), param="assistant_id")
    thread, run = runs.create_and_run(ctx.user, assistant, **body)
    if stream:
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
        body=request_specs.THREAD_CREATE,
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
        body=request_specs.THREAD_UPDATE,
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
        body=request_specs.CREATE_AND_RUN,
        stream=True,
        tags=("Runs",),
    ),
]
