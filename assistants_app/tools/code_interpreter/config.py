"""The code interpreter's settings and limits (Django settings when configured, else defaults)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assistants_app.conf import DEFAULTS, MiB

_REPO_DIR = Path(__file__).resolve().parents[3]


def setting(name: str) -> Any:
    """A Django setting, or its default (assistants_app.conf) when settings are not configured."""
    try:
        from django.conf import settings

        return getattr(settings, name)
    except Exception:  # ImproperlyConfigured, or Django not importable: stay usable as a pure module.
        return DEFAULTS[name]


def _setting_factory(name: str) -> Any:
    return field(default_factory=lambda: setting(name))


@dataclass
class Limits:
    """Per execution. With cgroups, memory, processes and CPU bound the execution's processes
    together; without, only each process (see docs/security.md)."""

    cpu_seconds: float = _setting_factory("CODE_INTERPRETER_CPU_SECONDS")
    wall_seconds: float = _setting_factory("CODE_INTERPRETER_WALL_SECONDS")
    memory_bytes: int = _setting_factory("CODE_INTERPRETER_MEMORY_BYTES")
    max_processes: int = _setting_factory("CODE_INTERPRETER_MAX_PROCESSES")
    max_output_bytes: int = _setting_factory("CODE_INTERPRETER_MAX_OUTPUT_BYTES")
    max_file_bytes: int = _setting_factory("CODE_INTERPRETER_MAX_FILE_BYTES")
    # The thread's /mnt/data as a whole: allocated bytes, and files + directories.
    workdir_bytes: int = _setting_factory("CODE_INTERPRETER_WORKDIR_BYTES")
    workdir_max_files: int = _setting_factory("CODE_INTERPRETER_WORKDIR_MAX_FILES")

    def __post_init__(self) -> None:
        for name in (
            "cpu_seconds",
            "wall_seconds",
            "memory_bytes",
            "max_processes",
            "max_output_bytes",
            "max_file_bytes",
            "workdir_bytes",
            "workdir_max_files",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"Limits.{name} must be positive")


def data_dir() -> Path:
    try:
        return Path(setting("DATA_DIR"))
    except KeyError:  # no Django settings: the settings module's default
        return _REPO_DIR / "var"


def venv_path() -> Path:
    """Where scripts/sandbox-venv.sh builds the sandbox venv (the script mirrors this default)."""
    configured = setting("CODE_INTERPRETER_VENV")
    return Path(configured) if configured else data_dir() / "sandbox-venv"


def sandbox_python() -> Path:
    """The interpreter that runs inside the sandbox: the sandbox venv's python (same path inside)."""
    return venv_path() / "bin" / "python3"


def host_uid() -> int | None:
    """The host uid to run bwrap as, or None to keep the server's own (non-root) uid."""
    if os.geteuid() != 0:
        return None
    return int(setting("CODE_INTERPRETER_SANDBOX_UID"))


def tmpfs_bytes() -> int:
    return int(setting("CODE_INTERPRETER_TMPFS_BYTES"))


def workdir_root() -> Path:
    root = setting("CODE_INTERPRETER_WORKDIR_ROOT") or data_dir() / "code-interpreter"
    return Path(root)


def workdir_for(thread_id: str) -> Path:
    return workdir_root() / thread_id


def session_idle_seconds() -> float:
    """A thread's Python session ends after this long without an execution; 0: no sessions."""
    return float(setting("CODE_INTERPRETER_SESSION_IDLE_SECONDS"))


def max_sessions() -> int:
    """Python sessions one executor process keeps (the least recently used end first)."""
    return max(1, int(setting("CODE_INTERPRETER_MAX_SESSIONS")))


def max_output_files() -> int:
    return int(setting("CODE_INTERPRETER_MAX_OUTPUT_FILES"))


def human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", MiB), ("KiB", 1024)):
        if n >= size and n % size == 0:
            return f"{n // size} {unit}"
    return f"{n} bytes"
