"""One measured phase: a client process does its set-up, then the servers' CPU time is read, the
client goes, and the CPU time is read again when it reports."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from . import profile
from .procs import CLK_TCK, PROCS, ROOT_DIR, cpu_seconds


def machine_cpu() -> float:
    """CPU seconds the whole machine spent busy (all processes, everyone's), from /proc/stat."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


def pct(values: list[float], p: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def _line(proc: subprocess.Popen[bytes], timeout: float) -> bytes:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise TimeoutError(f"client said nothing for {timeout:.0f} s")
    line = proc.stdout.readline()
    if not line:
        raise RuntimeError(f"client exited ({proc.wait()})")
    return line


def run_phase(
    groups: dict[str, list[int]],
    job: dict[str, Any],
    *,
    upstream_pid: int,
    timeout: float,
    log_dir: Path,
    profile_pids: dict[str, int] | None = None,
) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": str(ROOT_DIR)}
    client = PROCS.start(
        "client",
        [sys.executable, "-m", "bench.capacity.client"],
        env=env,
        cwd=ROOT_DIR,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        log=log_dir / "client.log",
    )
    assert client.stdin is not None
    recs: list[profile.Recording] = []
    try:
        client.stdin.write(json.dumps(job).encode() + b"\n")
        client.stdin.flush()
        if _line(client, 600).strip() != b"ready":
            raise RuntimeError("client set-up failed")
        if profile_pids:
            recs = profile.start(profile_pids, log_dir)
            time.sleep(2.0)  # py-spy attaches
        load = os.getloadavg()[0]
        before = {g: cpu_seconds(p) for g, p in groups.items()}
        up0, m0, w0 = cpu_seconds([upstream_pid]), machine_cpu(), time.monotonic()
        client.stdin.write(b"go\n")
        client.stdin.flush()
        out = json.loads(_line(client, timeout))
        after = {g: cpu_seconds(p) for g, p in groups.items()}
        up1, m1, w1 = cpu_seconds([upstream_pid]), machine_cpu(), time.monotonic()
    finally:
        if recs:
            profile.stop(recs)
        PROCS.stop(client, timeout=5)
    server = {g: after[g] - before[g] for g in groups}
    results = out["results"]
    tokens = job.get("tokens", 0)
    ok = [r for r in results if not r["error"]]
    delivered = sum(r["distinct"] for r in results)
    return {
        "mode": job["mode"],
        "n": job["n"],
        "requests": len(results),
        "tokens_per_stream": tokens,
        "ttft": [r["ttft"] for r in results if r["ttft"] is not None],
        "last": [r["last"] for r in results if r["last"] is not None],
        "errors": len(results) - len(ok),
        "error_samples": sorted({r["error"][:300] for r in results if r["error"]})[:5],
        "expected": tokens * len(results),
        "delivered": delivered,
        # Lost: tokens missing from streams that ended without an error (delivery integrity). A stream
        # that failed (run failed, HTTP error, timeout) is counted in errors, its missing tokens apart.
        "lost": sum(max(0, tokens - r["distinct"]) for r in ok),
        "missing_in_failed": sum(max(0, tokens - r["distinct"]) for r in results if r["error"]),
        "duplicated": sum(r["received"] - r["distinct"] for r in ok),
        "duplicated_in_failed": sum(r["received"] - r["distinct"] for r in results if r["error"]),
        "server_cpu": server,
        "server_cpu_total": sum(server.values()),
        "client_cpu": out["client_cpu_s"],
        "client_loop": out.get("loop"),
        "upstream_cpu": up1 - up0,
        "machine_cpu": m1 - m0,
        "wall": w1 - w0,
        "load": load,
        "profiles": {r.label: {"raw": str(r.raw), "cpu": r.cpu, "rate": r.rate} for r in recs},
    }
