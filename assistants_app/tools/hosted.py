"""Hosted tools: tools the engine executes itself, without pausing the run.

A hosted tool is offered to the model as a function; when the model calls it, the engine records a
tool call of the hosted type (`code_interpreter`, `file_search`) in the run step, streams its
deltas, executes it and feeds the output back to the model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypedDict

from assistants_app.models import Run


@dataclass
class ToolContext:
    run: Run
    step_id: str
    index: int  # the call's index within the step, for deltas
    call_id: str
    # Emit a `thread.run.step.delta` for this call: pass the tool-call payload without `index`.
    emit_delta: Callable[[dict[str, Any]], None]


class Citation(TypedDict):
    """A passage the tool showed the model under `marker` (e.g. 【0†guide.pdf】): where the answer
    writes the marker, it gets a file_citation annotation (runs/annotations.py)."""

    marker: str
    file_id: str
    quote: str


class OutputFile(TypedDict):
    """A file the tool wrote. Images become image_file parts of the next assistant message; other
    files file_path annotations where the answer cites `sandbox:/mnt/data/<name>`."""

    file_id: str
    name: str  # its path under /mnt/data
    image: bool


@dataclass
class ToolOutcome:
    output: str  # what the model reads
    tool_call: dict[str, Any]  # the final step_details tool call object ({"id", "type", <type>: {...}})
    # For the assistant message that follows; resolved by the engine.
    citations: list[Citation] = field(default_factory=list)
    files: list[OutputFile] = field(default_factory=list)


class HostedTool(Protocol):
    type: str

    def function_spec(self, run: Run, tool: dict[str, Any]) -> dict[str, Any]:
        """The Chat Completions function definition the model sees (name == self.type)."""
        ...

    def initial_call(self, call_id: str) -> dict[str, Any]:
        """The tool call object announced in the step before execution."""
        ...

    def input_delta(self, arguments_so_far: str, fragment: str) -> dict[str, Any] | None:
        """Optional streaming of the call's input while the model writes it (payload without index)."""
        ...

    async def execute(self, ctx: ToolContext, arguments: str) -> ToolOutcome: ...


_registry: dict[str, HostedTool] = {}


async def shutdown() -> None:
    """The executor is stopping: tools end what they keep per event loop (code-interpreter sessions)."""
    for tool in list(_registry.values()):
        close = getattr(tool, "shutdown", None)
        if close is not None:
            await close()


def register(tool: HostedTool) -> None:
    _registry[tool.type] = tool


def get(tool_type: str) -> HostedTool | None:
    _load_builtin()
    return _registry.get(tool_type)


_loaded = False


def _load_builtin() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import importlib

    for module in ("assistants_app.tools.code_interpreter.tool", "assistants_app.tools.file_search.tool"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise
