"""Python sessions (one sandboxed interpreter per thread, kept between executions), for real under
bubblewrap: state, output, restarts, idle timeout, LRU eviction, isolation, thread deletion."""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from assistants_app.tools.code_interpreter import sandbox, sessions
from assistants_app.tools.code_interpreter.outcome import ExecutionResult
from assistants_app.tools.code_interpreter.sandbox import Limits
from assistants_app.tools.code_interpreter.session import Session

_problem = sandbox._probe_namespaces() or sandbox.sessions_problem()
pytestmark = [
    pytest.mark.skipif(_problem is not None, reason=f"no Python sessions here: {_problem}"),
    pytest.mark.usefixtures("sandbox_venv"),
]
ROOMY = Limits(cpu_seconds=20, wall_seconds=60)


def make_root() -> Iterator[Path]:
    # World-searchable: a root server runs bwrap as an unprivileged uid that must reach the workdirs.
    path = Path(tempfile.mkdtemp(prefix="session-test-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def make_pool() -> AsyncIterator[sessions.SessionPool]:
    p = sessions.SessionPool(max_sessions=4, idle_seconds=600)
    yield p
    await p.aclose()


@pytest.fixture
def root() -> Iterator[Path]:
    yield from make_root()


@pytest.fixture
async def pool() -> AsyncIterator[sessions.SessionPool]:
    async for p in make_pool():
        yield p


async def run(
    pool: sessions.SessionPool, key: str, code: str, root: Path, limits: Limits = ROOMY
) -> ExecutionResult:
    return await pool.execute(key, code, root / key, limits=limits)


async def until(condition: object, seconds: float = 30) -> None:
    """Wait for `condition()` (no timing is asserted: only that it eventually holds)."""
    assert callable(condition)
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached")


def _gone(session: Session) -> bool:
    return session.proc is not None and session.proc.returncode is not None


async def test_variables_imports_and_functions_persist(pool: sessions.SessionPool, root: Path) -> None:
    first = await run(pool, "t", "import json\nx = 41\ndef half(n):\n    return n // 0\nprint('set')", root)
    assert first.logs == "set\n" and first.exit_code == 0 and first.fresh_session
    second = await run(pool, "t", "print(x + 1)\njson.dumps({'a': x})", root)
    assert second.logs == "42\n'{\"a\": 41}'\n" and not second.fresh_session
    assert second.state_lost is None and second.session_ended is None
    # A function defined in an earlier execution fails with that execution's source in the traceback.
    third = await run(pool, "t", "half(x)", root)
    assert third.exit_code == 1 and not third.fresh_session
    assert 'File "<code>", line 4, in half' in third.logs and "    return n // 0" in third.logs
    assert 'File "<code 3>", line 1' in third.logs
    assert third.logs.rstrip().endswith("ZeroDivisionError: integer division or modulo by zero")
    assert (await run(pool, "t", "x", root)).logs == "41\n"  # an exception does not end the session


async def test_output_is_per_execution_in_order_and_capped(pool: sessions.SessionPool, root: Path) -> None:
    code = (
        "import os, subprocess, sys\n"
        "print('out 1')\nprint('err 1', file=sys.stderr)\n"
        "os.system('echo from a child process')\n"
        "subprocess.run(['python3', '-c', 'print(6 * 7)'])\nprint('out 2')"
    )
    result = await run(pool, "t", code, root)
    assert result.logs == "out 1\nerr 1\nfrom a child process\n42\nout 2\n"
    big = await run(pool, "t", "for i in range(20_000):\n    print(i)", root, Limits(max_output_bytes=4096))
    assert big.output_truncated and "[... output truncated:" in big.logs and big.logs.endswith("19999\n")
    small = await run(pool, "t", "print('next')", root, Limits(max_output_bytes=4096))
    assert small.logs == "next\n" and not small.output_truncated  # nothing of the previous one


async def test_sys_exit_ends_the_cell_not_the_session(pool: sessions.SessionPool, root: Path) -> None:
    await run(pool, "t", "x = 1", root)
    exited = await run(pool, "t", "import sys\nprint('bye')\nsys.exit(3)", root)
    assert exited.exit_code == 3 and exited.logs == "bye\n" and exited.session_ended is None
    assert (await run(pool, "t", "x + 1", root)).logs == "2\n"


async def test_a_crash_restarts_the_session_and_says_the_state_was_lost(
    pool: sessions.SessionPool, root: Path
) -> None:
    await run(pool, "t", "x = 41", root)
    crashed = await run(pool, "t", "import os\nprint('going', flush=True)\nos._exit(5)", root)
    assert crashed.exit_code == 5 and crashed.logs == "going\n"
    assert crashed.session_ended == "the Python process exited with status 5 in the previous execution"
    assert "t" not in pool
    again = await run(pool, "t", "print(x)", root)
    assert again.fresh_session and "NameError: name 'x' is not defined" in again.logs
    assert again.state_lost == "the Python process exited with status 5 in the previous execution"
    assert (await run(pool, "t", "x = 1\nx", root)).state_lost is None  # said once


async def test_wall_timeout_kills_the_session(pool: sessions.SessionPool, root: Path) -> None:
    await run(pool, "t", "x = 41", root)
    session = pool._sessions["t"]
    stuck = await run(
        pool, "t", "print('spinning', flush=True)\nwhile True:\n    pass", root, Limits(wall_seconds=2)
    )
    assert stuck.timed_out and stuck.exit_code is None and stuck.logs == "spinning\n"
    assert stuck.killed_reason == "Execution timed out after 2 s"
    assert stuck.session_ended == "the previous execution was stopped: execution timed out after 2 s"
    assert _gone(session) and "t" not in pool
    fresh = await run(pool, "t", "print('x' in globals())", root)
    assert fresh.logs == "False\n" and fresh.fresh_session
    assert fresh.state_lost == "the previous execution was stopped: execution timed out after 2 s"


async def test_cpu_seconds_are_counted_per_execution(pool: sessions.SessionPool, root: Path) -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.7:\n    pass\nn = globals().get('n', 0) + 1\nprint(n)"
    lim = Limits(cpu_seconds=1, wall_seconds=60)
    # Three executions of 0.7 CPU seconds: 2.1 s for the session, each under its 1 s budget.
    logs = [(await run(pool, "t", burn, root, lim)).logs for _ in range(3)]
    assert logs == ["1\n", "2\n", "3\n"]
    runaway = await run(pool, "t", "while True:\n    pass", root, lim)
    assert runaway.timed_out and runaway.killed_reason == "CPU time limit of 1 s exceeded"
    assert runaway.session_ended == "the previous execution was stopped: CPU time limit of 1 s exceeded"
    after = await run(pool, "t", "print(globals().get('n'))", root, lim)
    assert after.logs == "None\n" and after.state_lost == runaway.session_ended


async def test_memory_error_keeps_the_session(pool: sessions.SessionPool, root: Path) -> None:
    await run(pool, "t", "keep = 'still here'", root)
    result = await run(pool, "t", "data = bytearray(2 * 1024**3)", root)
    assert result.memory_exceeded and result.killed_reason == "Memory limit of 512 MiB exceeded"
    assert "MemoryError" in result.logs and result.session_ended is None  # the runner caught it
    assert (await run(pool, "t", "keep", root)).logs == "'still here'\n"


async def test_two_threads_never_share_a_session(pool: sessions.SessionPool, root: Path) -> None:
    await run(pool, "a", "secret = 'of thread a'\nopen('a.txt', 'w').write('a')", root)
    b = await run(pool, "b", "import os\nprint('secret' in globals(), sorted(os.listdir('.')))", root)
    assert b.logs == "False []\n" and b.fresh_session
    a = await run(pool, "a", "print(secret, sorted(__import__('os').listdir('.')))", root)
    assert a.logs == "of thread a ['a.txt']\n"
    sa, sb = pool._sessions["a"], pool._sessions["b"]
    assert sa.proc is not None and sb.proc is not None and sa.proc.pid != sb.proc.pid
    assert sa.cg is not None and sb.cg is not None and sa.cg.paths != sb.cg.paths
    # Each sees only its own processes (its own pid namespace, where it is pid 1).
    mine = await run(
        pool,
        "b",
        "import os\nprint(os.getpid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))",
        root,
    )
    assert mine.logs == "1 [1]\n"


async def test_idle_sessions_end_after_the_timeout(root: Path) -> None:
    pool = sessions.SessionPool(idle_seconds=0.5)
    try:
        await run(pool, "t", "x = 1", root)
        session = pool._sessions["t"]
        assert session.cg is not None
        paths = session.cg.paths.values()
        await until(lambda: "t" not in pool and _gone(session) and not any(p.exists() for p in paths))
        again = await run(pool, "t", "print('x' in globals())", root)
        assert again.logs == "False\n" and again.state_lost == "the session was idle for more than 0.5 s"
    finally:
        await pool.aclose()


async def test_least_recently_used_sessions_end_first(root: Path) -> None:
    pool = sessions.SessionPool(max_sessions=2, idle_seconds=600)
    try:
        await run(pool, "a", "name = 'a'", root)
        await run(pool, "b", "name = 'b'", root)
        await run(pool, "a", "name", root)  # a is now more recent than b
        evicted = pool._sessions["b"]
        await run(pool, "c", "name = 'c'", root)
        assert list(pool._sessions) == ["a", "c"]
        await until(lambda: _gone(evicted))
        assert (await run(pool, "a", "name", root)).logs == "'a'\n"
        b = await run(pool, "b", "print(globals().get('name'))", root)
        assert b.logs == "None\n"
        assert (
            b.state_lost
            == "the session was ended to make room for other threads' sessions (at most 2 per worker)"
        )
        assert len(pool) == 2 and "c" not in pool  # c was the least recently used when b came back
    finally:
        await pool.aclose()


async def test_ending_a_thread_from_another_thread_kills_its_session(
    pool: sessions.SessionPool, root: Path
) -> None:
    await run(pool, "gone", "x = 1", root)
    await run(pool, "kept", "x = 2", root)
    session = pool._sessions["gone"]
    deleter = threading.Thread(target=sessions.end_thread, args=("gone",))  # as the delete hook runs
    deleter.start()
    deleter.join()
    await until(lambda: "gone" not in pool and _gone(session))
    assert (await run(pool, "kept", "x", root)).logs == "2\n"
    again = await run(pool, "gone", "print(globals().get('x'))", root)
    assert again.logs == "None\n" and again.state_lost == "the thread was deleted"


async def test_the_reaper_ends_sessions_of_threads_deleted_elsewhere(root: Path) -> None:
    alive = {"kept", "gone"}

    async def exists(ids: list[str]) -> set[str]:
        return {i for i in ids if i in alive}

    pool = sessions.SessionPool(idle_seconds=600, exists=exists, check_seconds=0.2)
    try:
        await run(pool, "kept", "x = 1", root)
        await run(pool, "gone", "x = 1", root)
        session = pool._sessions["gone"]
        alive.discard("gone")  # deleted by another process: only the database knows
        await until(lambda: "gone" not in pool and _gone(session))
        assert "kept" in pool and pool._lost["gone"] == "the thread was deleted"
    finally:
        await pool.aclose()


async def test_cancelling_an_execution_ends_its_session(pool: sessions.SessionPool, root: Path) -> None:
    await run(pool, "t", "x = 1", root)
    session = pool._sessions["t"]
    code = "import time\nwhile True:\n    open('tick', 'w').write(str(time.time()))\n    time.sleep(0.05)\n"
    task = asyncio.ensure_future(run(pool, "t", code, root))
    await until(lambda: (root / "t" / "tick").exists())
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert _gone(session) and "t" not in pool
    stamp = (root / "t" / "tick").read_text()
    await asyncio.sleep(0.3)
    assert (root / "t" / "tick").read_text() == stamp  # nothing is writing any more
    again = await run(pool, "t", "print(globals().get('x'))", root)
    assert again.logs == "None\n" and again.state_lost == "the previous execution was cancelled"


async def test_matplotlib_figures_do_not_carry_over(pool: sessions.SessionPool, root: Path) -> None:
    first = await run(
        pool, "t", "import matplotlib.pyplot as plt\nplt.plot([1, 2], [3, 4])\nplt.savefig('a.png')", root
    )
    assert first.exit_code == 0 and first.files == [Path("a.png")], first.logs
    second = await run(pool, "t", "print(plt.get_fignums())\nplt.plot([1, 2])\nplt.savefig('b.png')", root)
    assert second.logs == "[]\n" and second.files == [Path("b.png")]
    assert (root / "t" / "b.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_pool_shutdown_ends_every_session(root: Path) -> None:
    pool = sessions.SessionPool()
    await run(pool, "a", "x = 1", root)
    await run(pool, "b", "x = 1", root)
    running = list(pool._sessions.values())
    await pool.aclose()
    assert all(_gone(s) for s in running) and len(pool) == 0
    for s in running:
        assert s.cg is not None and not any(p.exists() for p in s.cg.paths.values())


async def test_one_shot_execute_still_starts_fresh_every_time(root: Path) -> None:
    workdir = root / "t"
    first = await sandbox.execute("x = 41\nopen('state.txt', 'w').write('41')", workdir, limits=ROOMY)
    assert first.exit_code == 0 and first.files == [Path("state.txt")]
    second = await sandbox.execute("print(open('state.txt').read())\nprint(x)", workdir, limits=ROOMY)
    assert second.logs.startswith("41\n") and "NameError" in second.logs
    assert os.listdir(workdir) == ["state.txt"]


async def test_a_forked_child_that_returns_does_not_take_over_the_session(
    pool: sessions.SessionPool, root: Path
) -> None:
    code = "import os\npid = os.fork()\nos.write(1, b'parent\\n' if pid else b'child\\n')\nif pid:\n    os.waitpid(pid, 0)"
    first = await run(pool, "t", code, root)
    assert sorted(first.logs.split()) == ["child", "parent"]
    # Only the runner reads the next requests: every later execution sees the parent's globals.
    for i in range(5):
        assert (await run(pool, "t", f"print(pid != 0, {i})", root)).logs == f"True {i}\n"
