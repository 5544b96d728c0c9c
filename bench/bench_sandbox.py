"""Code interpreter sandbox latency and throughput; prints a Markdown table.

    .venv/bin/python bench/bench_sandbox.py [--runs 30] [--concurrency 2,4,8]

cold: the first execute() in a freshly started Python process with Django settings already loaded
      (includes the one-off bwrap probe), one new process per sample.
warm: execute() again and again in one process (the steady state of a server).
bare: the same code in the sandbox venv's python without bwrap, to show what the sandbox costs.
throughput: `--runs` executions kept N at a time in flight on this machine.
Latency is measured around the whole execute() call (set-up, workdir scans, process, teardown).
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

from assistants_app.tools.code_interpreter import sandbox  # noqa: E402

CODES = {"print(1)": "print(1)", "import numpy": "import numpy"}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


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


async def bench(runs: int, levels: list[int]) -> None:
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
        print(f"\nLoad average {os.getloadavg()[0]:.2f} at the end.")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


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
    parser.add_argument("--cold-once", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.cold_once is not None:
        # A server has its settings loaded before its first execution; keep that out of the sample.
        from django.conf import settings

        settings.DATA_DIR  # noqa: B018
        print(asyncio.run(timed_execute(args.cold_once, Path(args.workdir))))
        return
    asyncio.run(bench(args.runs, [int(n) for n in args.concurrency.split(",")]))


if __name__ == "__main__":
    main()
