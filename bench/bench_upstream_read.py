"""CPU per upstream read: backends/pacing.PacedStream's own read vs. httpcore's AnyIOStream.read.

A local asyncio server writes `--reads` small chunks, one per loop turn, to a connection opened by
httpcore's anyio backend; the client reads them through a PacedStream (unpaced), once straight from
the anyio byte stream with asyncio's timeout (what the server does) and once through httpcore's
`AnyIOStream.read` (anyio's `fail_after` scope and an exception map per call), alternated
`--repeat` times in one process. Both sides share the process, so the figure includes the writer's
CPU: compare the two rows, not the absolute values.

    .venv/bin/python -m bench.bench_upstream_read [--reads 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time


async def _one(reads: int, direct: bool) -> float:
    import httpcore2

    from assistants_app.backends import pacing

    async def write(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        for _ in range(reads):
            writer.write(b"x" * 100)
            await writer.drain()
            await asyncio.sleep(0)
        writer.close()

    server = await asyncio.start_server(write, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    stream = pacing.PacedStream(await httpcore2.AnyIOBackend().connect_tcp("127.0.0.1", port, timeout=5))
    if not direct:
        stream._byte_stream = None  # falls back to httpcore's read
    n, start = 0, time.process_time()
    while await stream.read(65536, timeout=60):
        n += 1
    cpu = time.process_time() - start
    await stream.aclose()
    server.close()
    await server.wait_closed()
    return cpu / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reads", type=int, default=10000)
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    results: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(a.repeat):
        for direct in (False, True):
            results[direct].append(asyncio.run(_one(a.reads, direct)))
    print("| read | CPU per read, µs (median; each run) |")
    print("|---|---|")
    for direct, label in ((False, "httpcore's AnyIOStream.read"), (True, "PacedStream, byte stream direct")):
        runs = results[direct]
        print(f"| {label} | {statistics.median(runs):.1f} ({', '.join(f'{r:.1f}' for r in runs)}) |")


if __name__ == "__main__":
    main()
