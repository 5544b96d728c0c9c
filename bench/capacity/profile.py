"""py-spy sampling of the server's processes during a phase, and the top frames of the samples.

py-spy (`pip install py-spy` into the project venv) reads the target's memory from outside; with
--nonblocking it does not pause the target, so the profiled process runs at full speed. Only
samples of threads that were running are recorded (py-spy's default: idle threads are skipped), so
the percentages are shares of the server's CPU time. Samples per second: BENCH_PROFILE_RATE (default
100; 700-1000 resolve short runs' frames).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .procs import PROCS, ROOT_DIR, cpu_seconds

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")


def py_spy() -> str:
    exe = Path(sys.executable).parent / "py-spy"
    if exe.exists():
        return str(exe)
    found = shutil.which("py-spy")
    if not found:
        raise RuntimeError("py-spy not found: .venv/bin/pip install py-spy")
    return found


@dataclass
class Recording:
    label: str
    proc: subprocess.Popen[bytes]
    raw: Path
    pid: int
    rate: int
    cpu0: float = 0.0
    cpu: float = 0.0  # CPU seconds of the target while it was recorded


# Two views of the same seconds. "active": every thread py-spy finds running (its default idle filter);
# under load it also catches threads in the middle of going to sleep, so waits show up as leaves.
# "gil": only the thread holding the GIL, i.e. where Python code spends the process's time; work done
# with the GIL released (syscalls, sqlite3's C code, epoll) is not in it.
MODES = {"active": [], "gil": ["--gil"]}


def start(pids: dict[str, int], out_dir: Path, rate: int | None = None) -> list[Recording]:
    rate = rate or int(os.environ.get("BENCH_PROFILE_RATE", "100"))
    out_dir.mkdir(parents=True, exist_ok=True)
    recs = []
    for label, pid in pids.items():
        for mode, flags in MODES.items():
            name = f"{label}-{mode}"
            raw = out_dir / f"profile-{name}.txt"
            argv = [
                py_spy(),
                "record",
                "--pid",
                str(pid),
                "--rate",
                str(rate),
                "--format",
                "raw",
                "--function",
                "--nonblocking",
                *flags,
                "-o",
                str(raw),
            ]
            proc = PROCS.start(
                f"py-spy-{name}", argv, env=dict(os.environ), cwd=ROOT_DIR, log=out_dir / f"py-spy-{name}.log"
            )
            recs.append(Recording(name, proc, raw, pid, rate, cpu_seconds([pid])))
    return recs


def stop(recs: list[Recording]) -> None:
    for r in recs:
        r.cpu = cpu_seconds([r.pid]) - r.cpu0
        if r.proc.poll() is None:
            os.kill(r.proc.pid, signal.SIGINT)  # py-spy writes its file on SIGINT
    for r in recs:
        try:
            r.proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
        PROCS.stop(r.proc)


def _frame(f: str) -> str:
    m = _FRAME.match(f)
    if not m:
        return f
    path = m.group("file")
    # Keep the path from the package on (site-packages/…/x.py → pkg/x.py; ours stays relative).
    path = re.sub(r"^.*/site-packages/", "", path)
    path = re.sub(r"^.*/lib/python3\.\d+/", "", path)
    path = path.replace(str(ROOT_DIR) + "/", "")
    return f"{m.group('name')} ({path})"


def _package(frame: str) -> str:
    m = re.search(r"\(([^()]*)\)$", frame)
    path = m.group(1) if m else ""
    top = path.split("/")[0] if "/" in path else path.removesuffix(".py")
    return top or "?"


# Frames that every sample of a thread passes through (event loops, thread start-up, the command
# line): at the top of any "total" ranking and uninformative there.
_PLUMBING = re.compile(
    r"^(BaseEventLoop\.(run_forever|_run_once|run_until_complete)|Handle\._run|Runner\.run|run|Thread\."
    r"(_bootstrap|_bootstrap_inner|run)|<module>|main|ManagementUtility\.execute|BaseCommand\.\w+"
    r"|execute_from_command_line|CommandLineInterface\.run|Server\.run|AsyncioSelectorReactor\.run"
    r"|Command\.handle|ThreadedExecutor\._main|_worker|Executor\.run_forever) \("
)


def top(raw: Path, n: int = 15) -> dict[str, object]:
    """Self and total shares per function, and self shares per top-level package (of the leaf)."""
    selfc: Counter[str] = Counter()
    total: Counter[str] = Counter()
    pkgs: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        c = int(count)
        frames = [_frame(f) for f in stack.split(";")]
        # --subprocesses prefixes a "process <pid>:..." frame; it is not code.
        frames = [f for f in frames if not f.startswith("process ")]
        if not frames:
            continue
        samples += c
        selfc[frames[-1]] += c
        pkgs[_package(frames[-1])] += c
        for f in set(frames):
            total[f] += c

    def rows(counter: Counter[str]) -> list[tuple[str, float, float]]:
        return [(f, 100 * selfc[f] / samples, 100 * total[f] / samples) for f, _ in counter.most_common(n)]

    return {
        "samples": samples,
        "by_self": rows(selfc) if samples else [],
        "by_total": rows(Counter({f: c for f, c in total.items() if not _PLUMBING.match(f)}))
        if samples
        else [],
        "packages": [(p, 100 * c / samples) for p, c in pkgs.most_common(n)] if samples else [],
    }


def grep_total(raw: Path, pattern: str) -> float:
    """Share of samples whose stack has a frame matching `pattern` (e.g. 'construct_type')."""
    rx = re.compile(pattern)
    hit = samples = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            samples += int(count)
            if rx.search(stack):
                hit += int(count)
    return 100 * hit / samples if samples else 0.0


def main() -> None:
    """Print the tables for recorded raw files: python -m bench.capacity.profile FILE... [--top N]"""
    import argparse

    from .report import profile_tables

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("raw", nargs="+", type=Path)
    ap.add_argument("--top", type=int, default=15)
    ap.add_argument("--rate", type=int, default=100, help="the sampling rate they were recorded at")
    ap.add_argument(
        "--share",
        action="append",
        default=[],
        metavar="REGEX",
        help="also print the share of samples whose stack matches REGEX, e.g. 'MemoryEventLog\\.read ' (repeatable)",
    )
    args = ap.parse_args()
    prof = {}
    for raw in args.raw:
        t = top(raw, args.top)
        t.update(
            stream=grep_total(raw, r"AsyncStream\.__stream__"),
            construct=grep_total(raw, r"construct_type"),
            tiktoken=grep_total(raw, r"tiktoken"),
            sampled_s=t["samples"] / args.rate,
            cpu_s=float("nan"),
        )  # type: ignore[operator]
        prof[raw.stem] = t
    print("\n".join(profile_tables(prof)))
    if args.share:
        print("| profile | stack contains | % of samples |\n|---|---|---:|")
        for raw in args.raw:
            for pattern in args.share:
                print(f"| {raw.stem} | `{pattern}` | {grep_total(raw, pattern):.1f} |")


if __name__ == "__main__":
    main()
