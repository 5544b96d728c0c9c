"""Fixtures of the code interpreter's tests: the sandbox venv and settings for running it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from assistants_app.tools.code_interpreter import sandbox

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="session")
def sandbox_venv() -> Path:
    """Build the sandbox venv once if `make test` has not already (about a minute)."""
    if not os.path.lexists(sandbox.sandbox_python()):
        subprocess.run(
            ["bash", str(REPO / "scripts" / "sandbox-venv.sh"), str(sandbox.venv_path())], check=True
        )
    return sandbox.venv_path()


@pytest.fixture
def ci_settings(settings, sandbox_venv):
    root = Path(tempfile.mkdtemp(prefix="ci-workdirs-"))
    root.chmod(0o755)  # the sandbox uid must reach the thread's directory
    settings.CODE_INTERPRETER_WORKDIR_ROOT = str(root)
    settings.CODE_INTERPRETER_WALL_SECONDS = 60
    yield settings
    shutil.rmtree(root, ignore_errors=True)
