"""/v1/threads/{thread_id}/runs and their steps."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpResponseBase, JsonResponse

from assistants_app.models import Run, RunStep
from assistants_app.runs.events import get_event_log
from assistants_app.serializers import run_obj, step_obj
from assistants_app.services import lookups, runs, threads

from . import request_specs, sse
from .pagination import page
from .routing import Ctx, Operation
from .validation import Obj


def _with_content(ctx: Ctx) -> bool:
    return request_specs.INCLUDE_FILE_SEARCH_CONTENT in (ctx.query.get("include") or [])


def create(ctx: Ctx, thread_id: str) -> dict[str, Any] | HttpResponseBase:
    thread = lookups.get_thread(ctx.user, thread_id)
    body = dict(ctx.body)
    stream = body.pop("stream", False)
    assistant = lookups.get_assistant(ctx.user, body.pop("assistant_id"), param="assistant_id")
    run = runs.start_run(thread, assistant, **body)
    if stream:
        return sse.sse_response(sse.run_events(run.id, include_file_search_content=_with_content(ctx)))
    return run_obj(run)


def list_(ctx: Ctx, thread_id: str) -> dict[str, Any]:
    thread = lookups.get_thread(ctx.user, thread_id)
    return page(Run.objects.filter(thread=thread), ctx.query, run_obj)


def retrieve(ctx: Ctx, thread_id: str, run_id: str) -> HttpResponseBase:
    response = JsonResponse(run_obj(lookups.get_run(ctx.user, thread_id, run_id)))
    # The SDK's poll helpers wait this long between GETs (instead of their 1 s default).
    response["openai-poll-after-ms"] = str(settings.POLL_AFTER_MS)
    return response


def update(ctx: Ctx, thread_id: str, run_id: str) -> dict[str, Any]:
    run = lookups.get_run(ctx.user, thread_id, run_id)
    return run_obj(threads.set_metadata(run, ctx.body.get("metadata")))  # type: ignore[arg-type]


def cancel(ctx: Ctx, thread_id: str, run_id: str) -> dict[str, Any]:
    return run_obj(runs.cancel_run(lookups.get_run(ctx.user, thread_id, run_id)))


def submit_tool_outputs(ctx: Ctx, thread_id: str, run_id: str) -> dict[str, Any] | HttpResponseBase:
    run = lookups.get_run(ctx.user, thread_id, run_id)
    # Nothing is published while a run waits for outputs, so every event after this cursor belongs
    # to the run's continuation.
    cursor = get_event_log().end_cursor(run.id) if ctx.body.get("stream") else ""
    run = runs.submit_tool_outputs(run, ctx.body["tool_outputs"])
    if ctx.body.get("stream"):
        return sse.sse_response(sse.run_events(run.id, cursor))
    return run_obj(run)


def list_steps(ctx: Ctx, thread_id: str, run_id: str) -> dict[str, Any]:
    run = lookups.get_run(ctx.user, thread_id, run_id)
    full = _with_content(ctx)
    return page(
        RunStep.objects.filter(run=run), ctx.query, lambda s: step_obj(s, include_file_search_content=full)
    )


def retrieve_step(ctx: Ctx, thread_id: str, run_id: str, step_id: str) -> dict[str, Any]:
    step = lookups.get_step(ctx.user, thread_id, run_id, step_id)
    return step_obj(step, include_file_search_content=_with_content(ctx))


P = "/threads/{thread_id}/runs"
ITEM = "/threads/{thread_id}/runs/{run_id}"
T = ("Runs",)
OPERATIONS = [
    Operation(
        "POST",
        P,
        create,
        "createRun",
        "Create a run",
        "Run",
        body=request_specs.RUN_CREATE,
        query=request_specs.RUN_CREATE_QUERY,
        stream=True,
        tags=T,
    ),
    Operation(
        "GET", P, list_, "listRuns", "List runs", "RunList", query=request_specs.RUN_LIST_QUERY, tags=T
    ),
    Operation(
        "GET", ITEM, retrieve, "getRun", "Retrieve a run", "Run", headers=("openai-poll-after-ms",), tags=T
    ),
    Operation(
        "POST",
        ITEM,
        update,
        "modifyRun",
        "Modify a run's metadata",
        "Run",
        body=request_specs.RUN_UPDATE,
        tags=T,
    ),
    Operation("POST", ITEM + "/cancel", cancel, "cancelRun", "Cancel a run", "Run", body=Obj({}), tags=T),
    Operation(
        "POST",
        ITEM + "/submit_tool_outputs",
        submit_tool_outputs,
        "submitToolOuputsToRun",
        "Submit tool outputs to a run waiting for them",
        "Run",
        body=request_specs.SUBMIT_TOOL_OUTPUTS,
        stream=True,
        tags=T,
    ),
    Operation(
        "GET",
        ITEM + "/steps",
        list_steps,
        "listRunSteps",
        "List run steps",
        "RunStepList",
        query=request_specs.STEP_LIST_QUERY,
        tags=T,
    ),
    Operation(
        "GET",
        ITEM + "/steps/{step_id}",
        retrieve_step,
        "getRunStep",
        "Retrieve a run step",
        "RunStep",
        query=request_specs.STEP_INCLUDE,
        tags=T,
    ),
]
