"""Settings defaults live in one table (assistants_app.conf.DEFAULTS), read by chatsite/settings.py.

Before it, defaults were repeated where settings were read: `getattr(settings, X, default)` in 18
places (POLL_AFTER_MS three times), and embeddings.py fell back to os.environ itself.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from assistants_app.conf import DEFAULTS
from chatsite.settings import app_setting

ROOT = Path(__file__).resolve().parent.parent
APP_SOURCES = sorted(
    p for d in ("assistants_app", "chatsite") for p in (ROOT / d).rglob("*.py") if "migrations" not in p.parts
)


def _scattered_defaults(source: str) -> list[str]:
    """`getattr(settings, ..., default)` calls and os.environ reads of app settings in one module."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if (
            isinstance(func, ast.Name)
            and func.id == "getattr"
            and len(node.args) == 3
            and isinstance(node.args[0], ast.Name)
            and node.args[0].id == "settings"
        ):
            found.append(f"line {node.lineno}: getattr(settings, ..., default)")
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and ast.unparse(func.value) == "os.environ"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and node.args[0].value in DEFAULTS
        ):
            found.append(f"line {node.lineno}: os.environ.get({node.args[0].value!r})")
    return found


def test_no_module_repeats_a_setting_default():
    offenders = {
        str(p.relative_to(ROOT)): found
        for p in APP_SOURCES
        if p.name != "settings.py" and (found := _scattered_defaults(p.read_text()))
    }
    assert offenders == {}


def test_the_scan_finds_what_it_looks_for():
    # Positive control: the two patterns the code had before this table existed.
    assert _scattered_defaults('x = getattr(settings, "POLL_AFTER_MS", 500)\n')
    assert _scattered_defaults('import os\nx = os.environ.get("EMBEDDINGS_MODEL", "m")\n')
    assert not _scattered_defaults("x = settings.POLL_AFTER_MS\n")


def test_every_default_is_a_setting_and_documented():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Configuration") : readme.index("## Tools")]
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    assert [name for name in DEFAULTS if not hasattr(settings, name)] == []
    assert [name for name in DEFAULTS if name not in documented] == []


def test_app_setting_parses_like_its_default(monkeypatch):
    monkeypatch.setenv("RUN_CONCURRENCY", "7")
    monkeypatch.setenv("RUN_LEASE_SECONDS", "2.5")
    monkeypatch.setenv("CODE_INTERPRETER_SECCOMP", "0")
    monkeypatch.setenv("MODEL_BACKEND", "fake")
    assert app_setting("RUN_CONCURRENCY") == 7
    assert app_setting("RUN_LEASE_SECONDS") == 2.5
    assert app_setting("CODE_INTERPRETER_SECCOMP") is False
    assert app_setting("MODEL_BACKEND") == "fake"
    monkeypatch.delenv("RUN_CONCURRENCY")
    assert app_setting("RUN_CONCURRENCY") == DEFAULTS["RUN_CONCURRENCY"]
    monkeypatch.setenv("RUN_CONCURRENCY", "many")
    with pytest.raises(ImproperlyConfigured, match="RUN_CONCURRENCY must be an integer"):
        app_setting("RUN_CONCURRENCY")
