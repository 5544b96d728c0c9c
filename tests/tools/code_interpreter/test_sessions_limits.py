"""Python sessions keep the sandbox's limits: memory and processes bound the whole session, nothing
runs between executions (frozen), the workdir quota and the control channel are enforced, and a
session never outlives the process that started it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from assistants_app.tools.code_interpreter import cgroups, outcome, sessions
from assistants_app.tools.code_interpreter.sandbox import Limits
from tests.tools.code_interpreter.test_sessions import _problem, make_pool, make_root, run, until

pytestmark = pytest.mark.skipif(_problem is not None, reason=f"no Python sessions here: {_problem}")
MiB = 1024 * 1024
REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def root() -> Iterator[Path]:
    yield from make_root()


@pytest.fixture
async def pool() -> AsyncIterator[sessions.SessionPool]:
    async for p in make_pool():
        yield p


# Starts a child process that holds `mb` MiB until it is killed: memory that outlives the execution.
_HOLD = (
    "import subprocess, sys\n"
    "held = globals().setdefault('held', [])\n"
    "held.append(subprocess.Popen([sys.executable, '-c', "
    '\'import sys, time; data = b"x" * ({mb} * 1024 * 1024); print("holding", flush=True); time.sleep(600)\'],'
    " stdout=subprocess.PIPE))\n"
    "print(held[-1].stdout.readline().decode().strip(), len(held))\n"
)


async def test_memory_bounds_the_whole_session_not_each_execution(
    pool: sessions.SessionPool, root: Path
) -> None:
    lim = Limits(memory_bytes=512 * MiB, cpu_seconds=20, wall_seconds=60)
    # Each execution adds 200 MiB that stays: two fit in 512 MiB (the positive control)...
    assert (await run(pool, "t", _HOLD.format(mb=200), root, lim)).logs == "holding 1\n"
    assert (await run(pool, "t", _HOLD.format(mb=200), root, lim)).logs == "holding 2\n"
    # ...the third is over the session's 512 MiB, although the execution itself asks for only 200.
    third = await run(pool, "t", _HOLD.format(mb=200), root, lim)
    assert third.memory_exceeded and third.killed_reason == "Memory limit of 512 MiB exceeded"
    assert third.session_ended is not None and "t" not in pool


async def test_an_oom_kill_between_two_polls_still_ends_the_session(
    pool: sessions.SessionPool, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The monitor never polls during these executions: what ends the session is the check when the
    # code has finished (on cgroup v1 the kernel killed one holder and the code finished normally).
    monkeypatch.setattr(outcome, "POLL_SECONDS", 600)
    lim = Limits(memory_bytes=512 * MiB, cpu_seconds=20, wall_seconds=60)
    for n in (1, 2):
        assert (await run(pool, "t", _HOLD.format(mb=200), root, lim)).logs == f"holding {n}\n"
    third = await run(pool, "t", _HOLD.format(mb=200), root, lim)
    assert third.memory_exceeded and third.killed_reason == "Memory limit of 512 MiB exceeded"
    assert third.exit_code is None
    assert third.session_ended is not None and "t" not in pool
    fresh = await run(pool, "t", "print(len(globals().get('held', [])))", root, lim)
    assert fresh.fresh_session and fresh.logs == "0\n"


async def test_nothing_runs_between_executions(pool: sessions.SessionPool, root: Path) -> None:
    code = (
        "import threading, time\n"
        "ticks = [0]\n"
        "def spin():\n"
        "    while True:\n"
        "        ticks[0] += 1\n"
        "        open('beat', 'w').write(str(ticks[0]))\n"
        "threading.Thread(target=spin, daemon=True).start()\n"
        "time.sleep(0.3)\n"
    )
    await run(pool, "t", code, root)
    session = pool._sessions["t"]
    assert session.cg is not None and session.cg.freezer is not None
    events = session.cg.paths[session.cg.freezer] / "cgroup.events"
    await until(lambda: "frozen 1" in events.read_text())
    cpu, beat = session.cg.cpu_seconds(), (root / "t" / "beat").read_text()
    await asyncio.sleep(0.5)  # idle: the thread would write thousands of beats if it ran
    assert session.cg.cpu_seconds() == cpu and (root / "t" / "beat").read_text() == beat
    # The positive control: during an execution the thread runs again.
    again = await run(pool, "t", "a = ticks[0]\ntime.sleep(0.3)\nprint(ticks[0] > a)", root)
    assert again.logs == "True\n"


async def test_processes_bound_the_whole_session(pool: sessions.SessionPool, root: Path) -> None:
    lim = Limits(max_processes=8, cpu_seconds=20, wall_seconds=60)
    spawn = (
        "import subprocess, sys\n"
        "kids = globals().setdefault('kids', [])\n"
        "try:\n"
        "    for _ in range(3):\n"
        "        kids.append(subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)']))\n"
        "    print('ok', len(kids))\n"
        "except OSError as exc:\n"
        "    print('refused', len(kids), exc.errno)\n"
    )
    assert (await run(pool, "t", spawn, root, lim)).logs == "ok 3\n"
    assert (await run(pool, "t", spawn, root, lim)).logs == "ok 6\n"
    third = await run(pool, "t", spawn, root, lim)  # 1 runner + 6 children + bwrap: the 8th is refused
    assert third.logs.startswith("refused 6 ") or third.logs.startswith("refused 7 "), third.logs


async def test_disk_quota_stops_the_session_and_removes_only_its_files(
    pool: sessions.SessionPool, root: Path
) -> None:
    lim = Limits(workdir_bytes=32 * MiB, max_file_bytes=10 * MiB, cpu_seconds=20, wall_seconds=60)
    assert (await run(pool, "t", "open('kept.bin', 'wb').write(b'k' * 1024)", root, lim)).exit_code == 0
    code = (
        "import os, time\n"
        "for i in range(12):\n"
        "    open(f'part{i}.bin', 'wb').write(os.urandom(8 * 1024 * 1024))\n"
        "time.sleep(50)\n"
    )
    result = await run(pool, "t", code, root, lim)
    assert result.disk_exceeded and result.killed_reason is not None
    assert result.killed_reason.startswith("Disk quota of /mnt/data exceeded")
    assert result.session_ended is not None and result.files == []
    assert sorted(os.listdir(root / "t")) == ["kept.bin"]


async def test_garbage_on_the_control_channel_only_ends_its_own_session(
    pool: sessions.SessionPool, root: Path
) -> None:
    await run(pool, "other", "x = 'fine'", root)
    # The runner's reply fd is in its command line; the code shares its process and can write to it.
    code = "import os\nfd = int(open('/proc/self/cmdline').read().split('\\0')[9])\nos.write(fd, b'x' * 4096)\nimport time\ntime.sleep(30)"
    result = await run(pool, "t", code, root)
    assert result.session_ended == "the code wrote to the sandbox's control channel"
    assert "t" not in pool
    assert (await run(pool, "other", "x", root)).logs == "'fine'\n"
    assert (await run(pool, "t", "print('new session')", root)).logs == "new session\n"


async def test_changed_limits_start_a_new_session(pool: sessions.SessionPool, root: Path) -> None:
    await run(pool, "t", "x = 1", root)
    changed = await run(pool, "t", "print(globals().get('x'))", root, Limits(memory_bytes=256 * MiB))
    assert changed.logs == "None\n" and changed.state_lost == "the sandbox's settings changed"


def test_a_session_never_outlives_the_process_that_started_it(root: Path) -> None:
    """SIGKILL the server while its session is frozen and idle: the sandbox dies with it."""
    script = textwrap.dedent(
        f"""
        import asyncio, sys, time
        from pathlib import Path
        from assistants_app.tools.code_interpreter import sessions, streams
        from assistants_app.tools.code_interpreter.config import Limits

        async def main():
            pool = sessions.SessionPool()
            await pool.execute("t", "x = 1", Path({str(root / "t")!r}), limits=Limits(wall_seconds=60))
            session = pool._sessions["t"]
            child = streams.json_field(session._channel.bwrap_status(), "child-pid")
            print(session.proc.pid, child, flush=True)
            time.sleep(600)  # blocks the loop: nothing of ours runs any more

        asyncio.run(main())
        """
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "chatsite.settings"}
    server = subprocess.Popen([sys.executable, "-c", script], cwd=REPO, env=env, stdout=subprocess.PIPE)
    try:
        assert server.stdout is not None
        line = server.stdout.readline().decode()
        bwrap_pid, child_pid = (int(n) for n in line.split())
        assert os.path.exists(f"/proc/{child_pid}")
        os.kill(server.pid, signal.SIGKILL)
        server.wait(30)
        for _ in range(200):
            if not os.path.exists(f"/proc/{child_pid}") and not os.path.exists(f"/proc/{bwrap_pid}"):
                break
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{child_pid}"), "the sandbox outlived its server"
        assert not os.path.exists(f"/proc/{bwrap_pid}")
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        cgroups.detect.cache_clear()  # the next detect() removes the dead server's cgroups
        cgroups.detect()
