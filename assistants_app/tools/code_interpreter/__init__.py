"""The code interpreter hosted tool: a bubblewrap sandbox that runs model-written Python, with a
Python session per thread (sessions.py) that keeps its state between executions."""

from __future__ import annotations

from .sandbox import (
    ExecutionResult,
    Limits,
    SandboxUnavailable,
    available,
    execute,
    sandbox_python,
    sessions_problem,
    status,
)

__all__ = [
    "ExecutionResult",
    "Limits",
    "SandboxUnavailable",
    "available",
    "execute",
    "sandbox_python",
    "sessions_problem",
    "status",
]
