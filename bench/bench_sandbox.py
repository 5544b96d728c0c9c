"""Code interpreter sandbox latency and throughput; prints a Markdown table.

    .venv/bin/python bench/bench_sandbox.py [--runs 30] [--concurrency 2,4,8]

cold: the first execute() in a freshly started Python process with Django settings already loaded
      (includes the one-off bwrap probe), one new process per sample.
warm: execute() again and again in one process (the steady state of a server).
bare: the same code in the sandbox venv's python without bwrap, to show what the sandbox costs.
throughput: `--runs` executions kept N at a time in flight on this machine.
session: a thread's Python session (sessions.SessionPool.execute, what the tool uses): the first call
      starts the interpreter; "warm" is every later call in the same session (the goal for
      `print(1)` is a p50 of at most 20 ms). `--session-runs` samples.
Latency is measured around the whole execute() call (set-up, workdir scans, process, teardown; for
sessions: thaw, workdir scans, the request, the DONE frame, freeze).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")

from assistants_app.tools.code_interpreter import sandbox, sessions  # noqa: E402

CODES = {"print(1)": "print(1)", "import numpy": "import numpy"}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms" if seconds < 0.01 else f"{seconds * 1000:.0f} ms"


async def timed_execute(code: str, workdir: Path) -> float:
    start = time.perf_counter()
    result = await sandbox.execute(code, workdir)
    elapsed = time.perf_counter() - start
    if result.exit_code != 0:
        raise RuntimeError(f"benchmark code failed: {result}")
    return elapsed


def cold_sample(code: str, workdir: Path) -> float:
    """One execute() in a new interpreter; the child prints its own measurement."""
    out = subprocess.run(
        [sys.executable, __file__, "--cold-once", code, "--workdir", str(workdir)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return float(out.split()[-1])


def bare_sample(code: str) -> float:
    start = time.perf_counter()
    subprocess.run(
        [str(sandbox.sandbox_python()), "-c", code],
        check=True,
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "OPENBLAS_NUM_THREADS": "1"},
    )
    return time.perf_counter() - start


async def throughput(code: str, workdir: Path, runs: int, concurrency: int) -> tuple[float, list[float]]:
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one() -> None:
        async with gate:
            latencies.append(await timed_execute(code, workdir))

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(runs)))
    return runs / (time.perf_counter() - start), latencies


async def bench(runs: int, levels: list[int], session_runs: int) -> None:
    if not sandbox.available():
        sys.exit(f"sandbox unavailable: {sandbox._probe_namespaces() or 'run scripts/sandbox-venv.sh'}")
    workdir = Path(tempfile.mkdtemp(prefix="sandbox-bench-"))
    try:
        load = os.getloadavg()[0]
        print(
            f"Sandbox benchmark: {os.cpu_count()} CPUs, load average {load:.2f} at start, "
            f"{runs} runs per cell, bwrap {bwrap_version()}, sandbox Python {sandbox.sandbox_python()}\n"
        )
        print("| code | mode | p50 | p99 | mean |")
        print("|---|---|---|---|---|")
        for label, code in CODES.items():
            await timed_execute(code, workdir)  # page cache, pyc files
            rows: dict[str, list[float]] = {
                "bare python, no sandbox": [],
                "cold (new process)": [],
                "warm": [],
            }
            # Interleaved, so that load from other work on the machine hits every mode alike.
            for _ in range(runs):
                rows["bare python, no sandbox"].append(bare_sample(code))
                rows["cold (new process)"].append(await asyncio.to_thread(cold_sample, code, workdir))
                rows["warm"].append(await timed_execute(code, workdir))
            for mode, samples in rows.items():
                print(
                    f"| `{label}` | {mode} | {ms(percentile(samples, 50))} | {ms(percentile(samples, 99))} "
                    f"| {ms(statistics.fmean(samples))} |"
                )
        print("\n| code | concurrent | executions/s | p50 latency | p99 latency |")
        print("|---|---|---|---|---|")
        for label, code in CODES.items():
            for level in [1, *levels]:
                rate, latencies = await throughput(code, workdir, runs, level)
                print(
                    f"| `{label}` | {level} | {rate:.1f} | {ms(percentile(latencies, 50))} "
                    f"| {ms(percentile(latencies, 99))} |"
                )
        await session_bench(session_runs)
        print(f"\nLoad average {os.getloadavg()[0]:.2f} at the end.")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


async def session_bench(runs: int) -> None:
    """First call and warm calls of a Python session, per code; p50/p95/p99."""
    if sandbox.sessions_problem():
        print(f"\nPython sessions unavailable here: {sandbox.sessions_problem()}")
        return
    root = searchable_tmpdir("session-bench-")
    pool = sessions.SessionPool(max_sessions=4)
    try:
        print("\n| code | session | p50 | p95 | p99 | mean |")
        print("|---|---|---|---|---|---|")
        for label, code in CODES.items():
            first: list[float] = []
            warm: list[float] = []
            for i in range(runs):
                key = f"{label}-{i}"
                # First calls: each in a new session (a new interpreter). Then `runs` warm calls in
                # the session of the first sample, interleaved so that load hits both alike.
                first.append(await timed_session(pool, key, code, root))
                warm.append(await timed_session(pool, f"{label}-0", code, root))
                if i:
                    await pool.discard(key)
            for mode, samples in (("first call (starts it)", first), ("warm (second and later calls)", warm)):
                print(
                    f"| `{label}` | {mode} | {ms(percentile(samples, 50))} | {ms(percentile(samples, 95))} "
                    f"| {ms(percentile(samples, 99))} | {ms(statistics.fmean(samples))} |"
                )
    finally:
        await pool.aclose()
        shutil.rmtree(root, ignore_errors=True)


def searchable_tmpdir(prefix: str) -> Path:
    """A root server runs bwrap as an unprivileged uid that must reach the workdirs."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o755)
    return root


async def timed_session(pool: sessions.SessionPool, key: str, code: str, root: Path) -> float:
    start = time.perf_counter()
    result = await pool.execute(key, code, root / key)
    elapsed = time.perf_counter() - start
    if result.exit_code != 0:
        raise RuntimeError(f"benchmark code failed: {result}")
    return elapsed


def bwrap_version() -> str:
    try:
        return subprocess.run(["bwrap", "--version"], capture_output=True, text=True).stdout.split()[-1]
    except (OSError, IndexError):
        return "?"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--concurrency", default="2,4,8")
    parser.add_argument("--session-runs", type=int, default=100)
    parser.add_argument("--sessions-only", action="store_true", help="only the session table")
    parser.add_argument("--cold-once", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_once is not None:
        # A server has its settings loaded before its first execution; keep that out of the sample.
        from django.conf import settings

        settings.DATA_DIR  # noqa: B018
        print(asyncio.run(timed_execute(args.cold_once, Path(args.workdir))))
        return
    if args.sessions_only:
        asyncio.run(session_bench(args.session_runs))
        return
    asyncio.run(bench(args.runs, [int(n) for n in args.concurrency.split(",")], args.session_runs))


if __name__ == "__main__":
    main()
