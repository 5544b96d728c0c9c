"""The real server for the live tests (API, Node SDK, browser, request-body caps): `manage.py serve`
(daphne + embedded executor) in a subprocess, with its own data directory and a copy of a database
prepared once per session, talking to a FakeUpstream that runs in the test process. Started once per
distinct configuration and shared by every test module, through the `live` fixture (tests/conftest.py).
A module that restarts its server or changes what every user sees (the default assistant) sets
LIVE_RESTARTABLE = True and gets a server of its own instead, stopped after the module.

In phase 2 of scripts/test.sh (DATABASE_URL=postgres://..., REDIS_URL set) each server is the
production topology instead: its own PostgreSQL database, a separate `run_worker`, events through Redis.
"""

from __future__ import annotations

import atexit
import os
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import openai

from tests.fakes.upstream import FakeUpstream
from tests.support import ROOT, live_db

# Inherited variables that would point the server at shared services instead of its own files.
_SCRUB = (
    "DB_POOL_SIZE",  # scripts/test.sh turns the pool off for the test process, not for servers
    "DATABASE_URL",
    "REDIS_URL",
    "TEST_DATABASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "RUN_EXECUTOR",
    "MODEL_BACKEND",
    "STATIC_ROOT",
)
FILE_LIMIT = 256 * 1024


def _die_with_parent() -> None:
    """Linux: the server gets SIGTERM if the test process dies without running its clean-up."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Counter:
    """Counts the HTTP requests an SDK client sends (retries included), per method and path."""

    calls: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx2.Request) -> None:
        with self.lock:
            self.calls.append((request.method, request.url.path))

    def count(self, method: str | None = None, suffix: str = "") -> int:
        with self.lock:
            return sum(1 for m, p in self.calls if (method is None or m == method) and p.endswith(suffix))

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()


@dataclass
class LiveServer:
    base_url: str
    upstream: FakeUpstream
    keys: dict[str, str]
    data_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    # Production mode: `run_worker` processes, and clean-ups such as dropping the server's database.
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    cleanups: list[Callable[[], None]] = field(default_factory=list)
    # A module's own server (LIVE_RESTARTABLE, see own_server()), which restart() may stop and start.
    restartable: bool = False

    @property
    def origin(self) -> str:
        """The site itself (the chat pages), without the API's /v1."""
        return self.base_url.removesuffix("/v1")

    def client(self, user: str = "alice", **kw: object) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base_url, api_key=self.keys[user], **kw)  # type: ignore[arg-type]

    def counted_client(self, user: str = "alice", **kw: object) -> tuple[openai.OpenAI, Counter]:
        counter = Counter()
        http = openai.DefaultHttpxClient(event_hooks={"request": [counter]})
        return self.client(user, http_client=http, **kw), counter

    def async_client(self, user: str = "alice", **kw: object) -> openai.AsyncOpenAI:
        return openai.AsyncOpenAI(base_url=self.base_url, api_key=self.keys[user], **kw)  # type: ignore[arg-type]

    def sql(self, query: str, *params: object) -> list[tuple[Any, ...]]:
        """Run SQL (`?` placeholders) on the server's own database, its SQLite file or (phase 2) its
        PostgreSQL database: to check what the API cannot show, or to age a row. Aware datetimes
        are stored the way Django stores them on each."""
        url = self.env["DATABASE_URL"]
        if url.startswith("sqlite"):
            values = [live_db.sqlite_value(p) for p in params]
            with closing(sqlite3.connect(self.data_dir / "db.sqlite3", timeout=20)) as conn, conn:
                return conn.execute(query, values).fetchall()
        import psycopg

        with psycopg.connect(url, autocommit=True) as pg, pg.cursor() as cur:
            cur.execute(query.replace("?", "%s"), params)
            return cur.fetchall() if cur.description else []

    def manage(self, *args: str) -> str:
        return _manage(self.env, *args)

    def shell(self, code: str) -> str:
        """Run Python in `manage.py shell` on the server's own database and data directory."""
        return self.manage("shell", "-c", code)

    @property
    def env(self) -> dict[str, str]:
        return self._env

    _env: dict[str, str] = field(default_factory=dict)

    def log_tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def reset_upstream(self) -> None:
        # Replies a failed test left unconsumed would answer the next test's run.
        with self.upstream._lock:
            self.upstream._queue.clear()

    @property
    def port(self) -> int:
        return int(self.base_url.rsplit(":", 1)[1].split("/", 1)[0])

    def restart(self) -> None:
        """Stop the server as a deployment does (SIGTERM to the web process and, in phase 2, the run
        worker) and start it again on the same port, database and data directory."""
        if not self.restartable:
            raise RuntimeError("a shared live server is not restarted: set LIVE_RESTARTABLE = True")
        self._terminate()
        self.process, self.workers = _spawn(
            self.env, self.port, self.log_path, self.data_dir, worker=bool(self.workers)
        )
        _wait_ready(self)

    def _terminate(self) -> None:
        for proc in [self.process, *self.workers]:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(5)

    def stop(self) -> None:
        self._terminate()
        self.upstream.stop()
        for cleanup in self.cleanups:
            try:
                cleanup()
            except Exception as exc:  # clean-up must not hide the test's own result
                print(f"live_server clean-up failed: {exc}", file=sys.stderr)
        self.cleanups.clear()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def _manage(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def start_server(**settings: str) -> LiveServer:
    upstream = FakeUpstream().start()
    data_dir = Path(tempfile.mkdtemp(prefix="assistants-api-test-"))
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    env.update(
        {
            "DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite:///{data_dir}/db.sqlite3",
            "MODEL_BACKEND": "openai",
            "OPENAI_BASE_URL": upstream.base_url,
            "OPENAI_API_KEY": "x",
            "RUN_POLL_SECONDS": "0.05",
            "DJANGO_DEBUG": "0",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "POLL_AFTER_MS": "50",
            "FILE_UPLOAD_MAX_BYTES": str(FILE_LIMIT),
            "UPSTREAM_RETRY_BASE_SECONDS": "0.01",
            "UPSTREAM_MAX_RETRIES": "0",
            "UPSTREAM_STALL_TIMEOUT": "20",
            "RUN_CHECKPOINT_SECONDS": "0.05",
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            "STATIC_ROOT": str(live_db.SESSION_DIR / "static"),
        }
    )
    env.update(settings)
    cleanups: list[Callable[[], None]] = []
    template = live_db.prepared(env)
    production = live_db.production_services()
    if production is not None:
        # The production topology: web process + a separate run worker, events through Redis.
        name = f"assistants_live_{secrets.token_hex(5)}"
        env["DATABASE_URL"] = live_db.create_database(production[0], name, template=template.postgres)
        cleanups.append(lambda: live_db.drop_database(production[0], name))
        env["REDIS_URL"] = production[1]
        env["RUN_EXECUTOR"] = "external"
    else:
        assert template.sqlite is not None
        shutil.copyfile(template.sqlite, data_dir / "db.sqlite3")
    port = free_port()
    log_path = data_dir / "server.log"
    process, workers = _spawn(env, port, log_path, data_dir, worker=production is not None)
    server = LiveServer(
        f"http://127.0.0.1:{port}/v1",
        upstream,
        dict(template.keys),
        data_dir,
        process,
        log_path,
        workers=workers,
        cleanups=cleanups,
        _env=env,
    )
    _wait_ready(server)
    _warm_up(server)
    return server


def _spawn(
    env: dict[str, str], port: int, log_path: Path, data_dir: Path, *, worker: bool
) -> tuple[subprocess.Popen[bytes], list[subprocess.Popen[bytes]]]:
    """Start the web process (`serve`) and, in the production topology, a run worker."""

    def manage(args: list[str], log: Path) -> subprocess.Popen[bytes]:
        with log.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, str(ROOT / "manage.py"), *args],
                env=env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )

    web = manage(["serve", "--host", "127.0.0.1", "--port", str(port)], log_path)
    if not worker:
        return web, []
    return web, [manage(["run_worker", "--concurrency", "64"], data_dir / "worker.log")]


def _wait_ready(server: LiveServer) -> None:
    deadline = time.monotonic() + 90
    while True:
        if server.process.poll() is not None:
            tail = server.log_tail()
            server.stop()
            raise RuntimeError(f"server exited with {server.process.returncode}:\n{tail}")
        try:
            if httpx2.get(f"{server.base_url}/openapi.json", timeout=1).status_code == 200:
                return
        except httpx2.HTTPError:
            pass
        if time.monotonic() > deadline:
            tail = server.log_tail()
            server.stop()
            raise RuntimeError(f"server did not start:\n{tail}")
        time.sleep(0.1)


def _warm_up(server: LiveServer) -> None:
    """Run once, so that the first test's run doesn't also pay for the executor's first imports
    (tokenizer, HTTP client): seconds, which would make timing-sensitive tests flaky."""
    client = server.client(max_retries=0)
    assistant = client.beta.assistants.create(model="warm-up")
    try:
        client.beta.threads.create_and_run_poll(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": "warm up"}]},
            poll_interval_ms=50,
        )
    finally:
        client.beta.assistants.delete(assistant.id)


Config = tuple[tuple[str, str], ...]
_servers: dict[Config, Future[LiveServer]] = {}
_wanted: list[Config] = []
_lock = threading.Lock()
_starter = ThreadPoolExecutor(4, thread_name_prefix="api-live-start")


def own_server(**settings: str) -> LiveServer:
    """A server for one module alone (LIVE_RESTARTABLE): it may restart it and change what every
    user sees; the caller stops it."""
    server = start_server(**settings)
    server.restartable = True
    return server


def want(**settings: str) -> None:
    """Declare that a test will ask for this configuration, so that the first shared_server() call
    starts every wanted server at once instead of one after another (tests/conftest.py declares the
    configurations of the collected tests)."""
    _wanted.append(tuple(sorted(settings.items())))


def shared_server(**settings: str) -> LiveServer:
    """One server per configuration for the whole test session (stopped at exit)."""
    key = tuple(sorted(settings.items()))
    with _lock:
        for config in (key, *_wanted):
            future = _servers.get(config)
            if future is None or (
                future.done() and future.exception() is None and future.result().process.poll() is not None
            ):
                _servers[config] = _starter.submit(start_server, **dict(config))
        future = _servers[key]
    return future.result()


@atexit.register
def _stop_all() -> None:
    for future in _servers.values():
        if future.done() and future.exception() is None:
            future.result().stop()
    live_db.cleanup()
