"""The systems under test, each started from nothing into a temporary directory and stopped again:

- `embedded`: `manage.py serve` as `make run` starts it (daphne + embedded executor, SQLite,
  in-process event log), MODEL_BACKEND=openai pointed at the paced upstream;
- `cross`: PostgreSQL + Redis from scripts/services.sh, `manage.py serve` with RUN_EXECUTOR=external
  and one `manage.py run_worker`;
- `litellm`: the LiteLLM proxy (its own venv, never installed into ours) in front of the same upstream.

`cpu_groups()` names the process trees whose CPU time counts as "the server".
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from .procs import PROCS, ROOT_DIR, free_port, wait_until

ROOT = ROOT_DIR
# Variables that would point a server at someone else's services or change its mode.
SCRUB = (
    "DATABASE_URL",
    "REDIS_URL",
    "TEST_DATABASE_URL",
    "DJANGO_SETTINGS_MODULE",
    "RUN_EXECUTOR",
    "MODEL_BACKEND",
    "OPENAI_BASE_URL",
    "OPENAI_API_KEY",
    "EMBEDDINGS_BASE_URL",
    "DATA_DIR",
)


def _http(method: str, url: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(
        url, data=data, method=method, headers={"Content-Type": "application/json", **(headers or {})}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read() or b"null")


def _up(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=2).close()
        return True
    except urllib.error.HTTPError:
        return True  # it answered
    except OSError:
        return False


class Setup:
    name = ""
    kind = ""  # "ours" or "peer"

    def __init__(self, upstream_url: str, opts: Any) -> None:
        self.upstream_url = upstream_url
        self.opts = opts
        self.tmp = Path(tempfile.mkdtemp(prefix=f"bench-cap-{self.name}-"))
        self.port = 0
        self.pids: dict[str, list[int]] = {}

    def start(self, n_users: int) -> dict[str, Any]:
        """Start everything; returns what the client needs (host, port, credentials, chat users)."""
        raise NotImplementedError

    def cpu_groups(self) -> dict[str, list[int]]:
        return self.pids

    def stop(self) -> None:
        PROCS.stop_all_of(self)
        if self.opts.keep:
            print(f"# kept {self.tmp}", file=sys.stderr)
        else:
            for _ in range(3):  # a process that just died may still have been writing into it
                shutil.rmtree(self.tmp, ignore_errors=True)
                if not self.tmp.exists():
                    break
                time.sleep(0.5)

    def logs(self) -> list[Path]:
        return sorted(self.tmp.glob("*.log"))


class Ours(Setup):
    kind = "ours"
    cross = False

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k not in SCRUB}
        env.update(
            DJANGO_SETTINGS_MODULE="chatsite.settings",
            DATA_DIR=str(self.tmp / "data"),
            DATABASE_URL=f"sqlite:///{self.tmp}/data/db.sqlite3",
            DJANGO_DEBUG="0",
            MODEL_BACKEND="openai",
            OPENAI_BASE_URL=self.upstream_url,
            OPENAI_API_KEY="bench",
            DEFAULT_MODEL="bench",
            LOG_LEVEL=self.opts.log_level,
            RUN_CONCURRENCY=str(self.opts.run_concurrency),
            # The /v1 phases stream through one API key: the per-user cap (64 by default) would refuse
            # most of 500 streams. Kept on, above any phase's count, so each run still pays its check.
            RUN_MAX_ACTIVE_PER_USER="1000",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            PYTHONUNBUFFERED="1",
        )
        return env

    def start(self, n_users: int) -> dict[str, Any]:
        (self.tmp / "data").mkdir()
        env = self.env()
        if self.cross:
            env.update(self._services())
            env["RUN_EXECUTOR"] = "external"
        self._env = env
        prep = subprocess.run(
            [sys.executable, "-m", "bench.capacity.prepare", "init", str(n_users)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if prep.returncode:
            raise RuntimeError(f"prepare failed:\n{prep.stderr[-3000:]}")
        users = json.loads(prep.stdout.strip().splitlines()[-1])["users"]
        out = subprocess.run(
            [sys.executable, "manage.py", "create_api_key", "bench", "--create-user", "--name", "bench"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        key = out.stdout.strip().splitlines()[-1]
        for attempt in range(3):
            self.port = free_port()
            serve = PROCS.start(
                f"{self.name}-serve",
                self.serve_command(self.port),
                env=env,
                cwd=ROOT,
                log=self.tmp / "serve.log",
                owner=self,
            )
            try:
                wait_until(
                    lambda: _up(f"http://127.0.0.1:{self.port}/v1/openapi.json"),
                    120,
                    "serve",
                    alive=lambda p=serve: p.poll() is None,  # type: ignore[misc]
                )
                break
            except RuntimeError as exc:
                PROCS.stop(serve)
                if attempt == 2:
                    raise RuntimeError(
                        "serve did not start:\n" + (self.tmp / "serve.log").read_text()[-3000:]
                    ) from exc
        self.pids["web"] = [serve.pid]
        if self.cross:
            worker = PROCS.start(
                f"{self.name}-worker",
                [sys.executable, "manage.py", "run_worker"],
                env=env,
                cwd=ROOT,
                log=self.tmp / "worker.log",
                owner=self,
            )
            wait_until(
                lambda: "started" in (self.tmp / "worker.log").read_text(errors="replace"),
                120,
                "run_worker",
                alive=lambda: worker.poll() is None,
            )
            self.pids["worker"] = [worker.pid]
        base = f"http://127.0.0.1:{self.port}/v1"
        auth = {"Authorization": f"Bearer {key}", "OpenAI-Beta": "assistants=v2"}
        assistant = _http(
            "POST", f"{base}/assistants", {"model": "bench", "instructions": "You are a benchmark."}, auth
        )
        return {
            "key": key,
            "assistant_id": assistant["id"],
            "users": users,
            "host": "127.0.0.1",
            "port": self.port,
        }

    def _services(self) -> dict[str, str]:
        sdir = self.tmp / "services"
        senv = {**os.environ, "ASSISTANTS_SERVICES_DIR": str(sdir)}
        PROCS.on_stop(
            f"{self.name}-services",
            lambda: subprocess.run(
                ["bash", "scripts/services.sh", "stop"], cwd=ROOT, env=senv, capture_output=True, timeout=120
            ),
            owner=self,
        )
        done = subprocess.run(
            ["bash", "scripts/services.sh", "start"],
            cwd=ROOT,
            env=senv,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode:
            raise RuntimeError(f"services.sh start failed:\n{done.stderr[-3000:]}")
        lines = subprocess.run(
            ["bash", "scripts/services.sh", "env"],
            cwd=ROOT,
            env=senv,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        env = {}
        for line in lines.splitlines():
            if line.startswith("export "):
                k, v = line.removeprefix("export ").split("=", 1)
                env[k] = v.strip("'\"")
        state = dict(ln.split("=", 1) for ln in (sdir / "state").read_text().splitlines() if "=" in ln)
        self.pids["postgres"] = [int((Path(state["PGDATA"]) / "postmaster.pid").read_text().split()[0])]
        self.pids["redis"] = [int((sdir / "redis.pid").read_text().split()[0])]
        return env

    def serve_command(self, port: int) -> list[str]:
        return [sys.executable, "manage.py", "serve", "--host", "127.0.0.1", "--port", str(port)]


class Embedded(Ours):
    name = "embedded"


class Cross(Ours):
    name = "cross"
    cross = True


class CrossUvicorn(Cross):
    """The cross setup with uvicorn instead of daphne as the web server (the issue's "measure daphne
    against another ASGI server"): runs execute in run_worker either way, so the web process only
    reads the event log and writes SSE / websocket frames, which is what the two servers differ in.
    uvicorn's defaults otherwise (asyncio loop, h11, the websockets library) as installed."""

    name = "cross-uvicorn"

    def serve_command(self, port: int) -> list[str]:
        return [
            sys.executable, "-m", "uvicorn", "chatsite.asgi:application", "--host", "127.0.0.1",
            "--port", str(port), "--no-access-log", "--log-level", "warning", "--lifespan", "off",
        ]  # fmt: skip


class LiteLLM(Setup):
    """The peer: plain chat-completion streaming through the LiteLLM proxy, no database."""

    name = "litellm"
    kind = "peer"

    def start(self, n_users: int) -> dict[str, Any]:
        venv = Path(self.opts.litellm_venv)
        exe = venv / "bin" / "litellm"
        if not exe.exists():
            raise RuntimeError(
                f"{exe} not found: python3.12 -m venv {venv} && {venv}/bin/pip install 'litellm[proxy]'"
            )
        config = self.tmp / "litellm.yaml"
        # JSON is YAML. drop_params/telemetry off: nothing leaves the machine, nothing is logged per request.
        config.write_text(
            json.dumps(
                {
                    "model_list": [
                        {
                            "model_name": "bench",
                            "litellm_params": {
                                "model": "openai/bench",
                                "api_base": self.upstream_url,
                                "api_key": "bench",
                            },
                        }
                    ],
                    "litellm_settings": {
                        "telemetry": False,
                        "drop_params": True,
                        "set_verbose": False,
                        "turn_off_message_logging": True,
                    },
                    "general_settings": {"disable_spend_logs": True},
                }
            )
        )
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "LITELLM_", "DATABASE_URL"))
        }
        self.master_key = "sk-" + secrets.token_hex(32)
        env.update(
            LITELLM_MASTER_KEY=self.master_key,
            LITELLM_LOCAL_MODEL_COST_MAP="True",
            LITELLM_LOG="ERROR",
            LITELLM_MODE="PRODUCTION",
            NO_DOCS="True",
            PYTHONUNBUFFERED="1",
            HOME=str(self.tmp),
        )
        for attempt in range(3):
            self.port = free_port()
            proc = PROCS.start(
                "litellm",
                [
                    str(exe),
                    "--config",
                    str(config),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--num_workers",
                    "1",
                ],
                env=env,
                cwd=self.tmp,
                log=self.tmp / "litellm.log",
                owner=self,
            )
            try:
                wait_until(
                    lambda: _up(f"http://127.0.0.1:{self.port}/health/liveliness"),
                    180,
                    "litellm",
                    alive=lambda p=proc: p.poll() is None,  # type: ignore[misc]
                )
                break
            except RuntimeError as exc:
                PROCS.stop(proc)
                if attempt == 2:
                    raise RuntimeError(
                        "litellm did not start:\n" + (self.tmp / "litellm.log").read_text()[-3000:]
                    ) from exc
        self.pids["proxy"] = [proc.pid]
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "headers": {"Authorization": f"Bearer {self.master_key}"},
        }


SETUPS: dict[str, type[Setup]] = {
    "embedded": Embedded,
    "cross": Cross,
    "cross-uvicorn": CrossUvicorn,
    "litellm": LiteLLM,
}
