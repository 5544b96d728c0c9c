"""Capacity benchmark (issue 13): server CPU per streamed token, CPU per run, added time to first
token at 1/10/50/500 paced streams, deltas lost, and a burst of chat sends — for our server embedded
(SQLite, `make run`), across processes (PostgreSQL + Redis + run_worker) and for the LiteLLM proxy
as a peer in front of the same fake upstream, all in one run.

    .venv/bin/python -m bench.bench_capacity [--setups embedded,cross,litellm] [--streams 1,10,50,500]
        [--tokens 1000] [--rate 50] [--paths sse,ws] [--runs 100] [--burst 1000] [--profile]

Everything runs on loopback: the paced upstream (bench/capacity/upstream.py) is its own process, the
load comes from a separate client process (bench/capacity/client.py), and CPU time is read from
/proc for every process of the server under test (with their children). Per streaming phase:
  * added TTFT = the phase's TTFT percentile - the same percentile for the same number of streams
    read straight from the upstream by the same client, measured just before;
  * server CPU per token = server CPU seconds during the phase ÷ tokens delivered (run creation
    included; the "net" column subtracts the per-run CPU measured in the short-run phase).
Short runs: thread + run creation through the end of a 5-token reply (/v1), or a chat send through
the end of the reply on the websocket. Burst: `--burst` chat sends written at the same instant.
Needs: py-spy for --profile (.venv/bin/pip install py-spy); uvloop is used by the client and the
upstream when installed; LiteLLM in its own venv (--litellm-venv). The machine is shared: the
"others' CPU" column says how busy everyone else kept it during each phase.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.capacity import calibrate, profile, report  # noqa: E402
from bench.capacity.phase import run_phase  # noqa: E402
from bench.capacity.procs import PROCS, cpu_seconds, install_cleanup  # noqa: E402
from bench.capacity.setups import SETUPS, Ours, Setup  # noqa: E402

ACTIVE = ("queued", "in_progress", "cancelling", "requires_action")


def start_upstream(tokens: int, rate: float, log_dir: Path) -> tuple[str, int]:
    proc = PROCS.start(
        "upstream",
        [sys.executable, "-m", "bench.capacity.upstream", "--tokens", str(tokens), "--rate", str(rate)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        log=log_dir / "upstream.log",
    )
    assert proc.stdout is not None
    url = proc.stdout.readline().decode().strip()
    if not url.startswith("http://127.0.0.1:"):
        raise RuntimeError(f"upstream did not start: {url!r}")
    return url, proc.pid


def prompt(tokens: int, rate: float) -> str:
    return f"bench tokens={tokens} rate={rate:g}"


class Run:
    def __init__(self, args: argparse.Namespace, upstream_url: str, upstream_pid: int, log_dir: Path) -> None:
        self.args, self.upstream_url, self.upstream_pid, self.log_dir = (
            args,
            upstream_url,
            upstream_pid,
            log_dir,
        )
        host, port = upstream_url.removeprefix("http://").split("/")[0].split(":")
        self.direct_job = {
            "mode": "chat",
            "host": host,
            "port": int(port),
            "path": "/v1/chat/completions",
            "model": "bench",
        }
        self.streams: list[dict[str, Any]] = []
        self.runs: list[dict[str, Any]] = []
        self.bursts: list[dict[str, Any]] = []
        self.profiles: dict[str, Any] = {}
        self.idle: dict[str, dict[str, float]] = {}
        self.failures: list[str] = []
        self.calibration: dict[str, dict[str, float]] = {}

    def timeout(self, tokens: int, n: int) -> float:
        # Generous: a saturated server may take many times the paced duration; the client's own
        # per-read timeout (--timeout) is what fails a stuck stream.
        return 2 * self.args.timeout + tokens / max(self.args.rate, 1) * (3 + n / 5)

    def phase(self, setup: Setup, job: dict[str, Any], **kw: Any) -> dict[str, Any] | None:
        """One phase's record, or None (noted in self.failures) if it could not be measured at all."""
        try:
            return self._phase(setup, job, **kw)
        except (TimeoutError, RuntimeError, OSError, ValueError) as exc:
            note = f"{setup.name} {job['mode']} n={job['n']}: phase failed: {type(exc).__name__}: {exc}"
            print(f"#   {note}", file=sys.stderr, flush=True)
            self.failures.append(note)
            return None

    def _phase(self, setup: Setup, job: dict[str, Any], **kw: Any) -> dict[str, Any]:
        job = {"timeout": self.args.timeout, **job}
        p = run_phase(
            setup.cpu_groups(),
            job,
            upstream_pid=self.upstream_pid,
            timeout=self.timeout(job.get("tokens", 5), job["n"]) * job.get("sends", 1),
            log_dir=setup.tmp,
            **kw,
        )
        cpt = p["server_cpu_total"] / p["delivered"] * 1e6 if p["delivered"] else float("nan")
        print(
            f"#   {setup.name} {job['mode']} n={job['n']}: {p['requests']} requests, {p['errors']} errors, "
            f"lost {p['lost']}, server CPU {p['server_cpu_total']:.2f} s ({cpt:.0f} µs/token), "
            f"client CPU {p['client_cpu']:.2f} s, wall {p['wall']:.1f} s, load {p['load']:.1f}"
            + (f"; e.g. {p['error_samples'][0][:200]}" if p["error_samples"] else ""),
            file=sys.stderr,
            flush=True,
        )
        return p

    def measure_idle(self, setup: Setup, seconds: float = 5.0) -> None:
        """CPU the server uses with nothing to do (pollers, timers): part of every phase's figure."""
        groups = setup.cpu_groups()
        c0, t0 = {g: cpu_seconds(p) for g, p in groups.items()}, time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - t0
        self.idle[setup.name] = {g: (cpu_seconds(p) - c0[g]) / wall for g, p in groups.items()}

    def direct(self, setup: Setup, n: int) -> dict[str, Any] | None:
        a = self.args
        return self.phase(
            setup, {**self.direct_job, "n": n, "tokens": a.tokens, "prompt": prompt(a.tokens, a.rate)}
        )

    # --- one setup, start to stop
    def setup(self, name: str) -> None:
        a = self.args
        setup = SETUPS[name](self.upstream_url, a)
        ws_users = sum(a.streams) if "ws" in a.paths else 0
        n_users = ws_users + a.run_parallel + 2 + (a.burst if name != "litellm" else 0)
        if "sse" not in a.paths and name_in(name, a.profile):
            n_users += max(a.run_parallel, a.profile_streams)  # the chat phase profiled
        self.calibration[name] = calibrate.probe()
        print(
            f"# {name}: starting ({setup.tmp}); calibration {self.calibration[name]}",
            file=sys.stderr,
            flush=True,
        )
        try:
            info = setup.start(n_users)
            users = info.pop("users", [])
            base = {**info}
            short = prompt(5, a.rate)
            if isinstance(setup, Ours):
                self._ours(setup, base, users, short)
            else:
                self._peer(setup, base, short)
        finally:
            setup.stop()

    def _stream(
        self, setup: Setup, path: str, direct: dict[str, Any] | None, via: dict[str, Any] | None
    ) -> None:
        if direct is not None and via is not None:
            self.streams.append({"setup": setup.name, "path": path, "direct": direct, "via": via})

    def _run(self, setup: Setup, path: str, p: dict[str, Any] | None) -> None:
        if p is not None:
            self.runs.append({"setup": setup.name, "path": path, "phase": p})

    def _ours(self, setup: Ours, base: dict[str, Any], users: list[dict[str, str]], short: str) -> None:
        a = self.args
        warm, users = users[:2], users[2:]
        brief = {**base, "tokens": 5, "prompt": short}
        # Warm-up: the first run pays for imports (tokenizer, HTTP client) and connections.
        self.phase(setup, {**brief, "mode": "v1_runs", "n": 1, "sends": 3})
        if "ws" in a.paths:
            self.phase(setup, {**brief, "mode": "ws", "n": 1, "sends": 2, "users": warm})
        self.measure_idle(setup)
        long = {**base, "tokens": a.tokens, "prompt": prompt(a.tokens, a.rate)}
        for n in a.streams:
            direct = self.direct(setup, n)
            if "sse" in a.paths:
                self._stream(setup, "/v1 SSE", direct, self.phase(setup, {**long, "mode": "v1", "n": n}))
            if "ws" in a.paths:
                chunk, users = users[:n], users[n:]
                via = self.phase(setup, {**long, "mode": "ws", "n": n, "users": chunk})
                self._stream(setup, "chat websocket", direct, via)
        if a.runs:
            many = {**brief, "n": a.run_parallel, "sends": max(1, a.runs // a.run_parallel)}
            if "sse" in a.paths:
                self._run(setup, "/v1 SSE", self.phase(setup, {**many, "mode": "v1_runs"}))
            if "ws" in a.paths:
                chunk, users = users[: a.run_parallel], users[a.run_parallel :]
                self._run(setup, "chat websocket", self.phase(setup, {**many, "mode": "ws", "users": chunk}))
        if name_in(setup.name, a.profile):
            users = self._profile(setup, base, users)
        if a.burst:
            chunk = users[: a.burst]
            before = self._run_counts(setup)
            p = self.phase(setup, {**brief, "mode": "burst", "n": len(chunk), "users": chunk, "tokens": 0})
            # The burst's own runs: a send answered with an error may still have created one.
            runs = {
                k: v - before.get(k, 0) for k, v in self._wait_idle(setup).items() if v - before.get(k, 0)
            }
            if p is not None:
                db = "PostgreSQL" if setup.cross else "SQLite"
                self.bursts.append({"setup": setup.name, "database": db, "phase": p, "runs": runs})

    def _profile(
        self, setup: Ours, base: dict[str, Any], users: list[dict[str, str]]
    ) -> list[dict[str, str]]:
        """Profile the /v1 path, or the chat websocket when --paths is only ws; returns the users
        left for the phases after it."""
        a = self.args
        pids = {f"{setup.name}-{g}": p[0] for g, p in setup.cpu_groups().items() if g in ("web", "worker")}
        chat = "sse" not in a.paths
        if a.profile_mode == "runs":
            # The short-run phase: where the CPU per run goes (thread + run creation to the reply's end).
            job = {
                **base,
                "mode": "ws" if chat else "v1_runs",
                "n": a.run_parallel,
                "sends": max(1, a.runs // a.run_parallel),
                "tokens": 5,
                "prompt": prompt(5, a.rate),
            }
        else:
            job = {**base, "mode": "ws" if chat else "v1", "n": a.profile_streams, "tokens": a.profile_tokens}
            job["prompt"] = prompt(a.profile_tokens, a.rate)
        if chat:
            job["users"], users = users[: job["n"]], users[job["n"] :]
        p = self.phase(setup, job, profile_pids=pids)
        for label, rec in (p or {}).get("profiles", {}).items():
            path = Path(rec["raw"])
            if not path.exists():
                continue
            t = profile.top(path, a.top)
            t["stream"] = profile.grep_total(path, r"AsyncStream\.__stream__")
            t["construct"] = profile.grep_total(path, r"construct_type")
            t["tiktoken"] = profile.grep_total(path, r"tiktoken")
            t["sampled_s"] = t["samples"] / rec["rate"]
            t["cpu_s"] = rec["cpu"]
            t["phase"] = {k: p[k] for k in ("server_cpu_total", "delivered", "wall", "load")}  # type: ignore[index]
            self.profiles[label] = t
            (self.log_dir / path.name).write_bytes(path.read_bytes())
        return users

    def _run_counts(self, setup: Ours) -> dict[str, int]:
        out = subprocess.run(
            [sys.executable, "-m", "bench.capacity.prepare", "runs"],
            cwd=ROOT,
            env=setup._env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        return json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {}

    def _wait_idle(self, setup: Ours) -> dict[str, int]:
        """Wait for the burst's runs to end; their final statuses count too (a failed run is an error)."""
        deadline = time.monotonic() + self.args.timeout + 300
        counts: dict[str, int] = {}
        while time.monotonic() < deadline:
            counts = self._run_counts(setup)
            if counts and not any(counts.get(s) for s in ACTIVE):
                break
            time.sleep(1)
        return counts

    def _peer(self, setup: Setup, base: dict[str, Any], short: str) -> None:
        a = self.args
        job = {**base, "mode": "chat", "path": "/v1/chat/completions", "model": "bench"}
        self.phase(setup, {**job, "n": 1, "sends": 3, "tokens": 5, "prompt": short})  # warm-up
        self.measure_idle(setup)
        for n in a.streams:
            direct = self.direct(setup, n)
            via = self.phase(setup, {**job, "n": n, "tokens": a.tokens, "prompt": prompt(a.tokens, a.rate)})
            self._stream(setup, "chat completions SSE", direct, via)
        if a.runs:
            many = {**job, "n": a.run_parallel, "sends": max(1, a.runs // a.run_parallel), "tokens": 5}
            self._run(
                setup, "chat completions SSE (5-token request)", self.phase(setup, {**many, "prompt": short})
            )


def name_in(name: str, csv: str) -> bool:
    return name in [s for s in csv.split(",") if s]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setups", default="embedded,cross,litellm")
    ap.add_argument("--streams", default="1,10,50,500")
    ap.add_argument("--tokens", type=int, default=1000, help="tokens per stream in the streaming phases")
    ap.add_argument(
        "--rate", type=float, default=50.0, help="upstream tokens per second per stream (0: no pacing)"
    )
    ap.add_argument("--paths", default="sse,ws", help="our server's paths: sse (/v1), ws (chat websocket)")
    ap.add_argument("--runs", type=int, default=100, help="short (5-token) runs for CPU per run; 0 skips")
    ap.add_argument("--run-parallel", type=int, default=10, help="short runs in flight at once")
    ap.add_argument("--burst", type=int, default=1000, help="chat sends at the same instant; 0 skips")
    ap.add_argument("--profile", default="", help="setups to profile with py-spy, e.g. embedded")
    ap.add_argument(
        "--profile-mode",
        choices=("stream", "runs"),
        default="stream",
        help="profile --profile-streams long streams, or the short runs (--runs, --run-parallel)",
    )
    ap.add_argument("--profile-streams", type=int, default=10)
    ap.add_argument("--profile-tokens", type=int, default=1000)
    ap.add_argument("--top", type=int, default=15, help="profile entries to show")
    ap.add_argument(
        "--run-concurrency",
        type=int,
        default=0,
        help="RUN_CONCURRENCY (default: the largest stream count, >= 32)",
    )
    ap.add_argument("--log-level", default="WARNING", help="LOG_LEVEL of our server")
    ap.add_argument(
        "--timeout", type=float, default=120.0, help="seconds of silence before a stream counts as failed"
    )
    ap.add_argument("--litellm-venv", default=os.environ.get("LITELLM_VENV", "/work/bench-venvs/litellm"))
    ap.add_argument("--out", default="", help="write the raw results as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directories (logs, databases)")
    args = ap.parse_args()
    args.streams = [int(s) for s in args.streams.split(",") if s]
    args.paths = [s for s in args.paths.split(",") if s]
    args.run_concurrency = args.run_concurrency or max([32, *args.streams])
    setups = [s for s in args.setups.split(",") if s]
    for s in setups:
        if s not in SETUPS:
            ap.error(f"unknown setup {s!r} (choose from {', '.join(SETUPS)})")

    install_cleanup()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))
    log_dir = Path(os.environ.get("BENCH_CAPACITY_DIR", ROOT / "var" / "bench-capacity"))
    log_dir.mkdir(parents=True, exist_ok=True)
    started = time.strftime("%Y-%m-%d %H:%M")
    try:
        url, up_pid = start_upstream(args.tokens, args.rate, log_dir)
        run = Run(args, url, up_pid, log_dir)
        for name in setups:
            try:
                run.setup(name)
            except KeyboardInterrupt:
                raise
            except Exception as exc:
                print(f"# {name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    finally:
        PROCS.stop_all()
    emit(run, args, started)


def emit(run: Run, args: argparse.Namespace, started: str) -> None:
    per_run = {
        (r["setup"], r["path"]): r["phase"]["server_cpu_total"] / max(1, r["phase"]["requests"])
        for r in run.runs
    }
    lines = [
        f"Capacity run {started}: {args.tokens} tokens per stream at {args.rate:g} tokens/s, RUN_CONCURRENCY="
        f"{args.run_concurrency}, {os.cpu_count()} CPUs; idle server CPU: "
        + "; ".join(
            f"{k}: " + ", ".join(f"{g} {v * 1000:.0f}" for g, v in groups.items()) + " ms/s"
            for k, groups in run.idle.items()
        ),
        "CPU-time calibration before each setup (bench/capacity/calibrate.py; bare metal: ~20 ms loop, "
        "5-10 µs wake-up): "
        + "; ".join(
            f"{k}: loop {v['compute_ms']:.0f} ms, empty wake-up {v['wakeup_us']:.0f} µs"
            for k, v in run.calibration.items()
        ),
        "",
        *report.streaming_table(run.streams, per_run),
        "",
        *report.cpu_breakdown(run.streams),
    ]
    if run.runs:
        lines += ["", *report.runs_table(run.runs)]
    if run.bursts:
        lines += ["", *report.burst_table(run.bursts)]
    if run.profiles:
        lines += report.profile_tables(run.profiles)
    if run.failures:
        lines += ["", "Phases that could not be measured:", *(f"- {f}" for f in run.failures)]
    print("\n".join(lines))
    if args.out:
        Path(args.out).write_text(
            json.dumps(
                {
                    "args": {k: v for k, v in vars(args).items()},
                    "streams": run.streams,
                    "runs": run.runs,
                    "bursts": run.bursts,
                    "profiles": run.profiles,
                    "idle": run.idle,
                    "calibration": run.calibration,
                    "failures": run.failures,
                },
                indent=1,
                default=str,
            )
        )


if __name__ == "__main__":
    main()
