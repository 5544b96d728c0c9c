"""What a large anonymous request body costs a live `manage.py serve` (issue 9, item 4).

For each size, one client POSTs that many bytes to /accounts/login/ (Content-Length set, the whole
body sent as fast as the server takes it, like a careless or hostile client) and, separately, with
chunked encoding. Reported: the server's peak RSS growth (VmHWM) and the time until its answer.

    .venv/bin/python -m bench.bench_bodies [--sizes 268435456] [--root DIR]

--root runs another checkout's server (e.g. an export of an older commit) for comparison.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def _post(port: int, size: int, chunked: bool) -> tuple[float, str]:
    """Send `size` bytes (whole 64 KiB blocks) unless the server answers first; (seconds, status line)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=120)
    block = b"a" * 65536
    blocks = max(1, size // len(block))
    length = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {blocks * len(block)}"
    sock.sendall(
        f"POST /accounts/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\n{length}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n\r\n".encode()
    )
    frame = b"%x\r\n" % len(block) + block + b"\r\n" if chunked else block
    started = time.monotonic()
    try:
        for _ in range(blocks):
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            sock.sendall(frame)
        else:
            if chunked:
                sock.sendall(b"0\r\n\r\n")
        answer = sock.recv(4096)
    except (BrokenPipeError, ConnectionResetError):
        answer = b""
    elapsed = time.monotonic() - started
    sock.close()
    return elapsed, answer.split(b"\r\n", 1)[0].decode("latin-1") or "(connection reset)"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default=str(256 * 1024 * 1024))
    parser.add_argument("--root", default=str(ROOT))
    args = parser.parse_args()
    sys.path.insert(0, args.root)
    from tests.support import live_server as api_live

    server = api_live.start_server()
    try:
        pid = server.process.pid
        port = int(server.base_url.rsplit(":", 1)[1].split("/")[0])
        for size in [int(s) for s in args.sizes.split(",")]:
            for chunked in (False, True):
                before = _status(pid, "VmHWM")
                elapsed, answer = _post(port, size, chunked)
                time.sleep(0.5)
                grown = _status(pid, "VmHWM") - before
                kind = "chunked" if chunked else "content-length"
                print(
                    f"{size / 2**20:.0f} MiB {kind:14s} answer={answer!r} after {elapsed:.2f}s; "
                    f"peak RSS +{grown / 2**20:.1f} MiB (now {_status(pid, 'VmRSS') / 2**20:.0f} MiB)"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
