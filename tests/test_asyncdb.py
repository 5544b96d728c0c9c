"""One async database helper (assistants_app/asyncdb.py) for the engine, the tools, stream.follow
and the websocket consumer.

Before it there were three conventions, and stream.follow's idle fallback ran on asgiref's shared
"thread-sensitive" thread, which every sync view also uses: a busy thread stalled every stream
that was waiting for its run to end.
"""

from __future__ import annotations

import ast
import asyncio
import threading
from pathlib import Path

import pytest
from asgiref.sync import sync_to_async

from assistants_app.models import Assistant, Run
from assistants_app.runs.events import RunEvent
from assistants_app.runs.stream import follow
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread

APP = Path(__file__).resolve().parent.parent / "assistants_app"


@pytest.fixture
def finished_run(transactional_db, alice, event_log) -> tuple[Run, str]:
    run = start_run(create_thread(alice), Assistant.objects.create(owner=alice, model="m"))
    # Finished without its terminal event in the log (a publisher that crashed): only the row says so.
    Run.objects.filter(id=run.id).update(status="completed")
    return run, event_log.end_cursor(run.id)


async def test_the_stream_fallback_does_not_wait_for_the_shared_sync_thread(finished_run) -> None:
    run, cursor = finished_run
    release = threading.Event()
    # Hold asgiref's thread-sensitive executor, as a slow sync view would.
    blocker = asyncio.ensure_future(sync_to_async(release.wait, thread_sensitive=True)(10))
    await asyncio.sleep(0.05)
    try:
        seen = await asyncio.wait_for(_collect(run.id, cursor), timeout=5)
    finally:
        release.set()
        await blocker
    assert [e.event for e in seen] == ["thread.run.completed"]
    assert seen[0].data["id"] == run.id


async def _collect(run_id: str, after: str) -> list[RunEvent]:
    return [ev async for ev in follow(run_id, after, check_every=0.05)]


def _async_db_calls(source: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name.endswith("database_sync_to_async") or name.endswith("sync_to_async"):
                found.append(f"line {node.lineno}: {ast.unparse(node)[:60]}")
    return found


def test_nothing_else_wraps_sync_code_for_the_database() -> None:
    found = {
        str(p.relative_to(APP)): calls
        for p in APP.rglob("*.py")
        if p.name != "asyncdb.py" and (calls := _async_db_calls(p.read_text()))
    }
    # Downloads read file handles (not the database) off the event loop; the HTTP handler hands the
    # middleware chain to the request's own thread, as Django's handler does (server/asgi_handler.py).
    assert set(found) == {"api/files.py", "server/asgi_handler.py"}
    assert all("handle." in c for c in found["api/files.py"])
    assert len(found["server/asgi_handler.py"]) == 1
    assert "thread_sensitive=True" in (APP / "server" / "asgi_handler.py").read_text()
    assert _async_db_calls("x = database_sync_to_async(f, thread_sensitive=False)\n")  # positive control
