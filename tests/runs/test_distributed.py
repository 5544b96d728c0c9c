"""The production path for real: PostgreSQL + Redis, runs executed by separate worker processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db import connection

from assistants_app.models import Assistant, Message, Run
from assistants_app.runs import events
from assistants_app.services.runs import start_run
from assistants_app.services.threads import create_thread, post_message
from tests.fakes import upstream as up_
from tests.support.helpers import collect_events, names, text_of, wait_run

pytestmark = [pytest.mark.usefixtures("redis_url", "postgres"), pytest.mark.django_db(transaction=True)]
ROOT = Path(__file__).resolve().parents[2]


def _db_url() -> str:
    s = connection.settings_dict
    return f"postgres://{s['USER']}:{s['PASSWORD'] or ''}@{s['HOST']}:{s['PORT']}/{s['NAME']}"


@pytest.fixture
def upstream(settings) -> Iterator[up_.FakeUpstream]:
    with up_.FakeUpstream() as up:
        yield up


@pytest.fixture
def workers(upstream, settings, tmp_path):
    events.reset_event_log()
    procs: list[subprocess.Popen[bytes]] = []

    def start(lease: float = 15.0) -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "DATABASE_URL": _db_url(),
            "REDIS_URL": settings.REDIS_URL,
            "RUN_EXECUTOR": "external",
            "MODEL_BACKEND": "openai",
            "OPENAI_BASE_URL": upstream.base_url,
            "OPENAI_API_KEY": "test",
            "RUN_POLL_SECONDS": "0.1",
            "RUN_LEASE_SECONDS": str(lease),
            "RUN_CHECKPOINT_SECONDS": "0.05",
            "DATA_DIR": str(tmp_path),
        }
        p = subprocess.Popen(
            [sys.executable, "manage.py", "run_worker"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert p.stdout is not None
        line = p.stdout.readline().decode()
        assert "started" in line, line
        procs.append(p)
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    events.reset_event_log()


@pytest.fixture
def assistant(alice):
    return Assistant.objects.create(owner=alice, model="gpt-4o")


def _thread(alice):
    t = create_thread(alice)
    post_message(t, role="user", content="hello")
    return t


def test_worker_process_streams_to_reader_here_through_redis(workers, upstream, alice, assistant):
    workers()
    upstream.script(up_.text(*[f"w{i} " for i in range(50)], delay=0.005))
    run = start_run(_thread(alice), assistant)
    got = collect_events(run.id, timeout=30)
    assert names(got)[-1] == "thread.run.completed"
    assert text_of(got) == "".join(f"w{i} " for i in range(50))
    assert Message.objects.get(run_id=run.id).text == text_of(got)


def test_two_workers_share_the_queue_without_double_execution(workers, upstream, alice, assistant):
    workers()
    workers()
    runs = [start_run(_thread(alice), assistant) for _ in range(20)]
    for r in runs:
        assert wait_run(r.id, ("completed", "failed"), timeout=60).status == "completed"
    # Exactly one claim and one answer per run (the upstream may see a retried request or two
    # under load; those are the backend's retries of a failed request, not a second execution).
    rows = Run.objects.filter(id__in=[r.id for r in runs])
    assert all(r.attempts == 1 for r in rows)
    assert all(Message.objects.filter(run=r).count() == 1 for r in rows)


def test_worker_killed_mid_run_then_new_worker_ends_it_keeping_partial(workers, upstream, alice, assistant):
    first = workers(lease=4.0)
    upstream.script(up_.hang(after=["Half ", "an ", "answer"]))
    run = start_run(_thread(alice), assistant)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        msg = Message.objects.filter(run_id=run.id).first()
        if msg is not None and msg.text == "Half an answer":
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the partial text was never checkpointed")
    first.send_signal(signal.SIGKILL)
    first.wait(5)
    assert Run.objects.get(id=run.id).status == "in_progress"
    workers(lease=4.0)
    run = wait_run(run.id, ("failed", "completed", "expired"), timeout=60)
    assert run.status == "failed" and "lease" in run.last_error["message"]  # type: ignore[index]
    msg = Message.objects.get(run=run)
    assert msg.status == "incomplete" and msg.text == "Half an answer"
