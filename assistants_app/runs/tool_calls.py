"""Tool calls in a run: what the model is offered, streaming its calls into the tool step, executing
hosted tools and function endpoints, and the run's earlier tool rounds as the model reads them back.

Hosted tools (tools/hosted.py) are offered as functions under their type's name. A stored tool
call keeps what the model wrote and read (`_arguments`, `_output`) beside the API's fields; API
objects omit those (objects.step_obj).

A function call is answered by one of three: the function's endpoint, if staff attached one
(tools/function_endpoints: executed here, its output recorded like a submitted one); the client,
through submit_tool_outputs (the run waits in requires_action for those calls only); or, in a run
nobody can answer (the chat's), no one: the run ends at once instead of waiting to expire.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from assistants_app.backends.base import ToolCallDelta
from assistants_app.ids import new_call_id
from assistants_app.models import Run, RunStep
from assistants_app.models.run import RunOrigin
from assistants_app.tools import hosted
from assistants_app.tools.function_endpoints import call as endpoint_call
from assistants_app.tools.function_endpoints.call import Endpoint

from .outputs import Outputs
from .rounds import Call, Round

Hosted = dict[str, hosted.HostedTool]
Endpoints = Mapping[str, Endpoint]
log = logging.getLogger(__name__)


def client_can_answer(run: Run) -> bool:
    """Whether anyone can submit tool outputs for `run`: an API client can, the chat page cannot."""
    return run.origin != RunOrigin.CHAT


def unanswerable_message(names: list[str]) -> str:
    """What a run that nobody can answer ends with (run.last_error; shown under the chat's reply)."""
    quoted = ", ".join(f"“{n}”" for n in dict.fromkeys(names))
    tool = "tools" if len(set(names)) > 1 else "tool"
    return (
        f"The assistant tried to use the {tool} {quoted}, which the chat can't run: nothing on this "
        "server answers it. An administrator can attach an endpoint to it in the admin, or remove it "
        "from the assistant."
    )


def tool_specs(run: Run) -> tuple[list[dict[str, Any]], Hosted]:
    """The Chat Completions tools for `run`, and its hosted tools by the function name they get."""
    specs: list[dict[str, Any]] = []
    hosted_by_name: Hosted = {}
    for tool in run.tools or []:
        ttype = tool.get("type")
        if ttype == "function":
            fn = tool["function"]
            spec = {
                "name": fn["name"],
                "description": fn.get("description", ""),
                "parameters": fn.get("parameters") or {"type": "object", "properties": {}},
            }
            if fn.get("strict") is not None:
                spec["strict"] = fn["strict"]
            specs.append({"type": "function", "function": spec})
        else:
            impl = hosted.get(ttype)
            if impl is None:
                continue
            spec = impl.function_spec(run, tool)
            hosted_by_name[spec["name"]] = impl
            specs.append({"type": "function", "function": spec})
    return specs, hosted_by_name


def tool_choice(run: Run) -> Any:
    """The run's tool_choice in Chat Completions form (a hosted tool is a function there)."""
    choice = run.tool_choice
    if choice is None or isinstance(choice, str):
        return choice
    if choice.get("type") == "function":
        return choice
    return {"type": "function", "function": {"name": choice.get("type")}}


async def on_delta(outputs: Outputs, rnd: Round, ev: ToolCallDelta, hosted_by_name: Hosted) -> None:
    """Add a streamed tool-call fragment to the round and announce it in the tool step."""
    if rnd.tool_step is None:
        await outputs.open_tool_step(rnd)
    call = rnd.calls.get(ev.index)
    fresh = call is None
    if call is None:
        call = rnd.calls[ev.index] = Call(index=ev.index, id=ev.id or new_call_id())
    if ev.name:
        call.name += ev.name
    if ev.arguments:
        call.arguments += ev.arguments
    impl = hosted_by_name.get(call.name)
    if impl is not None:
        if fresh or ev.name:
            outputs.step_delta(rnd, call.index, impl.initial_call(call.id))
        elif ev.arguments:
            payload = impl.input_delta(call.arguments, ev.arguments)
            if payload is not None:
                outputs.step_delta(rnd, call.index, payload)
        return
    fn: dict[str, Any] = {"arguments": ev.arguments or ""}
    if fresh or ev.name:
        fn["name"] = call.name
        fn["output"] = None
    payload = {"type": "function", "function": fn}
    if fresh:
        payload["id"] = call.id
    outputs.step_delta(rnd, call.index, payload)


@dataclass
class Executed:
    pending: list[dict[str, Any]]  # function calls the client must answer (submit_tool_outputs)
    files: list[hosted.OutputFile] = field(default_factory=list)  # for the answer that follows
    citations: list[hosted.Citation] = field(default_factory=list)
    # Functions called in a run nobody can answer, that have no endpoint: the run must end.
    unanswerable: list[str] = field(default_factory=list)


async def execute(
    run: Run,
    outputs: Outputs,
    rnd: Round,
    hosted_by_name: Hosted,
    race: Callable[[Awaitable[Any]], Awaitable[Any]],
    endpoints: Endpoints | None = None,
) -> Executed:
    """Execute the round's hosted calls and endpoint calls (each under `race`: cancel and expiry stop
    it) and record every call in the tool step, which completes unless function calls wait for the
    client. In a run nobody can answer, a call of a function without an endpoint executes nothing
    and is reported in `unanswerable`."""
    step = rnd.tool_step
    assert step is not None
    endpoints = endpoints or {}
    done = Executed(pending=[])
    calls: list[dict[str, Any]] = []
    functions = {t["function"]["name"]: t["function"] for t in run.tools or [] if t.get("type") == "function"}
    ordered = sorted(rnd.calls.values(), key=lambda c: c.index)
    served = [c for c in ordered if c.name in functions and c.name in endpoints]
    unserved = [c.name for c in ordered if c.name in functions and c.name not in endpoints]
    if unserved and not client_can_answer(run):
        # Nothing in this round runs: its answer could not be completed anyway.
        await outputs.save_tool_step(rnd, [_unexecuted(c, hosted_by_name) for c in ordered], completed=False)
        done.unanswerable = unserved
        return done
    answers: dict[int, str] = (
        await race(_call_endpoints(outputs, rnd, served, endpoints, functions)) if served else {}
    )
    for call in ordered:
        impl = hosted_by_name.get(call.name)
        if impl is not None:
            ctx = hosted.ToolContext(
                run=run,
                step_id=step.id,
                index=call.index,
                call_id=call.id,
                emit_delta=functools.partial(outputs.step_delta, rnd, call.index),
            )
            outcome = await race(impl.execute(ctx, call.arguments))
            calls.append(
                {**outcome.tool_call, "id": call.id, "_arguments": call.arguments, "_output": outcome.output}
            )
            done.files += outcome.files
            done.citations += outcome.citations
            continue
        if call.index in answers:
            output: str | None = answers[call.index]
        else:
            output = None if call.name in functions else f"Error: there is no tool named {call.name!r}."
        calls.append(_function_call(call, output))
        if output is None:
            done.pending.append(
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
            )
    await outputs.save_tool_step(rnd, calls, completed=not done.pending)
    return done


def _function_call(call: Call, output: str | None) -> dict[str, Any]:
    return {
        "id": call.id,
        "type": "function",
        "function": {"name": call.name, "arguments": call.arguments, "output": output},
    }


def _unexecuted(call: Call, hosted_by_name: Hosted) -> dict[str, Any]:
    impl = hosted_by_name.get(call.name)
    if impl is not None:
        return {**impl.initial_call(call.id), "id": call.id, "_arguments": call.arguments}
    return _function_call(call, None)


async def _call_endpoints(
    outputs: Outputs,
    rnd: Round,
    calls: list[Call],
    endpoints: Endpoints,
    functions: Mapping[str, Mapping[str, Any]],
) -> dict[int, str]:
    """Each call's endpoint output by call index. Parallel calls go out at once: a model asks for
    several together when it can use the answers together."""

    async def one(call: Call) -> tuple[int, str]:
        try:
            output = await endpoint_call.call(
                endpoints[call.name], call.arguments, functions[call.name].get("parameters")
            )
        except Exception:
            log.exception("function endpoint %s crashed", call.name)
            output = "Error: calling the endpoint failed on the server."
        outputs.step_delta(rnd, call.index, {"type": "function", "function": {"output": output}})
        return call.index, output

    return dict(await asyncio.gather(*(one(c) for c in calls)))


# --- earlier rounds, as the model reads them back ----------------------------------------------
def tool_steps(run: Run) -> list[RunStep]:
    return list(RunStep.objects.filter(run=run, type="tool_calls").order_by("id"))


def tool_tail(run: Run, steps: list[RunStep] | None = None) -> list[dict[str, Any]]:
    """This run's tool rounds in Chat Completions form, oldest first (from `steps`, the run's
    tool_calls steps in order, when the caller has just read them)."""
    tail: list[dict[str, Any]] = []
    for step in tool_steps(run) if steps is None else steps:
        calls = step.step_details.get("tool_calls", [])
        if not calls:
            continue
        tail.append(
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {"name": call_name(c), "arguments": call_arguments(c)},
                    }
                    for c in calls
                ],
            }
        )
        for c in calls:
            tail.append({"role": "tool", "tool_call_id": c["id"], "content": call_output(c) or ""})
    return tail


def call_name(call: dict[str, Any]) -> str:
    if call.get("type") == "function":
        return str(call["function"]["name"])
    return str(call.get("type", ""))


def call_arguments(call: dict[str, Any]) -> str:
    if call.get("type") == "function":
        return str(call["function"].get("arguments", ""))
    return call.get("_arguments") or json.dumps(call.get(call.get("type", ""), {}).get("input", ""))


def call_output(call: dict[str, Any]) -> str | None:
    """A call's output, or None while it has none (a function call waiting for the client)."""
    output = call["function"].get("output") if call.get("type") == "function" else call.get("_output")
    return None if output is None else str(output)
