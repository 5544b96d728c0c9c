"""The code interpreter hosted tool: a bubblewrap sandbox that runs model-written Python."""

from __future__ import annotations

from .sandbox import (
    ExecutionResult,
    Limits,
    SandboxUnavailable,
    available,
    execute,
    sandbox_python,
    status,
)

__all__ = [
    "ExecutionResult",
    "Limits",
    "SandboxUnavailable",
    "available",
    "execute",
    "sandbox_python",
    "status",
]
