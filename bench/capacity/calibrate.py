"""How expensive CPU time is on this machine right now, so figures from different runs can be compared.

On a shared 2-core machine the same work costs more CPU time when other processes keep the caches cold
(an empty event-loop wake-up measured 8-166 µs here depending on the load). Each setup's report line
carries both probes, taken just before the setup starts.
"""

from __future__ import annotations

import asyncio
import time


def compute_ms() -> float:
    """CPU milliseconds for a fixed pure-Python loop (about 20 ms on an idle core)."""
    t = time.process_time()
    s = 0
    for i in range(1_000_000):
        s += i & 7
    return (time.process_time() - t) * 1000


def wakeup_us(n: int = 100, interval: float = 0.01) -> float:
    """CPU microseconds per empty asyncio timer wake-up (uvloop when installed, like client and upstream)."""

    async def probe() -> float:
        t = time.process_time()
        for _ in range(n):
            await asyncio.sleep(interval)
        return (time.process_time() - t) / n * 1e6

    try:
        import uvloop

        return float(uvloop.run(probe()))
    except ImportError:
        return asyncio.run(probe())


def probe() -> dict[str, float]:
    return {"compute_ms": min(compute_ms() for _ in range(3)), "wakeup_us": wakeup_us()}
