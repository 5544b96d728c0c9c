"""The code interpreter sandbox, exercised for real under bubblewrap (skipped only if bwrap cannot work)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from assistants_app.tools.code_interpreter import bwrap, cgroups, sandbox
from assistants_app.tools.code_interpreter.sandbox import (
    ExecutionResult,
    Limits,
    SandboxUnavailable,
    execute,
)

REPO = Path(__file__).resolve().parents[3]

_problem = sandbox._probe_namespaces()
pytestmark = pytest.mark.skipif(_problem is not None, reason=f"bubblewrap cannot run here: {_problem}")

# Tests that exercise a limit set their own small one (wall 2 s, CPU 1 s). The rest get room: other
# suites share this 2-core machine, and a loaded box can take seconds just to import matplotlib.
FAST = Limits(cpu_seconds=20, wall_seconds=60)


@pytest.fixture
def workdir(sandbox_venv: Path) -> Iterator[Path]:
    # Not pytest's tmp_path: /tmp/pytest-of-root is 0700, and a root server runs bwrap as an
    # unprivileged uid that must be able to reach the workdir (execute() hands the dir itself over).
    path = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def run(code: str, workdir: Path, limits: Limits = FAST) -> ExecutionResult:
    return await execute(code, workdir, limits=limits)


async def test_prints_come_back_in_logs_with_the_last_expression(workdir: Path) -> None:
    result = await run("import sys\nprint('hello')\nprint('oops', file=sys.stderr)\n6 * 7", workdir)
    assert result.logs == "hello\noops\n42\n"
    assert result.exit_code == 0
    assert not (result.timed_out or result.memory_exceeded or result.output_truncated)
    assert result.killed_reason is None
    assert result.files == []
    assert result.duration > 0


async def test_exception_traceback_comes_back_in_logs(workdir: Path) -> None:
    code = "def parse(s):\n    return int(s)\n\nprint('before')\nparse('x')\n"
    result = await run(code, workdir)
    assert result.exit_code == 1
    assert result.killed_reason is None and not result.timed_out
    assert result.logs.startswith("before\nTraceback (most recent call last):\n")
    assert 'File "<code>", line 5, in <module>' in result.logs
    assert "    return int(s)" in result.logs  # source lines are shown, as in a notebook
    assert result.logs.rstrip().endswith("ValueError: invalid literal for int() with base 10: 'x'")
    assert "RUNNER" not in result.logs and "_main" not in result.logs  # no sandbox frames

    syntax = await run("print(1\n", workdir)
    assert syntax.exit_code == 1 and "SyntaxError" in syntax.logs


async def test_variables_do_not_persist_but_files_do(workdir: Path) -> None:
    first = await run("x = 41\nopen('state.txt', 'w').write('41')", workdir)
    assert first.exit_code == 0 and first.files == [Path("state.txt")]
    second = await run("print(open('state.txt').read())\nprint(x)", workdir)
    assert second.logs.startswith("41\n") and "NameError: name 'x' is not defined" in second.logs
    assert second.files == []


async def test_loopback_and_outside_network_are_unreachable(workdir: Path) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.setblocking(False)
        port = server.getsockname()[1]
        code = (
            "import socket\n"
            f"for host, port in [('127.0.0.1', {port}), ('10.0.0.1', 80), ('1.1.1.1', 53)]:\n"
            "    try:\n"
            "        socket.create_connection((host, port), timeout=2).close()\n"
            "        print('CONNECTED', host)\n"
            "    except OSError as exc:\n"
            "        print('blocked', host, exc.errno)\n"
        )
        result = await run(code, workdir)
        assert "CONNECTED" not in result.logs
        assert result.logs.count("blocked") == 3
        with pytest.raises(BlockingIOError):
            server.accept()  # nothing ever reached the host's listener


async def test_project_files_and_settings_are_invisible(workdir: Path) -> None:
    code = (
        "import os\n"
        f"for path in [{str(REPO / 'chatsite' / 'settings.py')!r}, {str(Path(settings.DATA_DIR) / 'secret_key')!r},\n"
        "             '/root/.bashrc', '/etc/shadow', '/usr/local/etc/npmrc', '/proc/1/root/etc/hostname']:\n"
        "    try:\n"
        "        open(path).read()\n"
        "        print('READ', path)\n"
        "    except OSError as exc:\n"
        "        print('hidden', path, type(exc).__name__)\n"
        "try:\n"
        "    import chatsite.settings\n"
        "    print('IMPORTED settings')\n"
        "except ImportError as exc:\n"
        "    print('no settings module:', exc)\n"
        f"print(sorted(os.listdir({str(REPO)!r})) if os.path.exists({str(REPO)!r}) else 'no project dir')\n"
    )
    result = await run(code, workdir)
    assert "READ" not in result.logs and "IMPORTED" not in result.logs
    assert result.logs.count("hidden") == 6
    assert "no settings module: No module named 'chatsite'" in result.logs
    # Only the sandbox venv's path (under DATA_DIR) is mounted; the project itself is not.
    assert "manage.py" not in result.logs


async def test_server_environment_is_invisible(workdir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("DJANGO_SECRET_KEY", "django-secret")
    code = (
        "import glob, os\n"
        "print(sorted(os.environ.items()))\n"
        # bwrap's own pid-1 reaper is in the sandbox too: its environment must be empty.
        "for path in glob.glob('/proc/[0-9]*/environ'):\n"
        "    print(path, open(path, 'rb').read())\n"
    )
    result = await run(code, workdir)
    assert "/proc/1/environ" in result.logs
    assert "sk-secret" not in result.logs and "django-secret" not in result.logs
    assert "('MPLBACKEND', 'Agg')" in result.logs and "('HOME', '/tmp')" in result.logs


def _processes_of(uid: int) -> set[int]:
    pids = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.stat(f"/proc/{entry}").st_uid == uid:
                    pids.add(int(entry))
            except FileNotFoundError:
                pass
    return pids


async def test_process_limit_stops_forking(workdir: Path) -> None:
    code = (
        "import os, time\n"
        "n = 0\n"
        "try:\n"
        "    while True:\n"
        "        if os.fork() == 0:\n"
        "            time.sleep(30)\n"
        "            os._exit(0)\n"
        "        n += 1\n"
        "except OSError as exc:\n"
        "    print('fork refused after', n, exc.errno)\n"
    )
    result = await run(code, workdir, Limits(max_processes=16, wall_seconds=60))
    assert "fork refused after" in result.logs
    assert int(result.logs.split()[3]) < 16
    # The sleeping children (30 s) died with the sandbox's pid namespace: the run did not wait for them.
    assert result.exit_code == 0 and result.duration < 20


async def test_fork_bomb_is_contained(workdir: Path) -> None:
    uid = sandbox._host_uid()
    before = _processes_of(uid) if uid is not None else set()
    code = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    result = await run(code, workdir, Limits(wall_seconds=2, max_processes=64))
    assert result.timed_out and result.exit_code is None
    assert result.killed_reason is not None
    assert result.killed_reason.startswith("Execution timed out after 2 s")
    if cgroups.detect().version is not None:  # pids.events says why it got nowhere
        assert result.killed_reason.endswith("(the limit of 64 processes was reached)")
    assert result.duration < 10  # the wall timeout, then at most the 5 s grace for the last output
    if uid is not None:  # every sandbox process is gone (they ran as the sandbox's host uid)
        await asyncio.sleep(0.2)
        assert _processes_of(uid) <= before


async def test_infinite_loop_is_killed_at_the_wall_timeout(workdir: Path) -> None:
    result = await run(
        "print('spinning', flush=True)\nwhile True:\n    pass",
        workdir,
        Limits(wall_seconds=2, cpu_seconds=30),
    )
    assert result.timed_out and result.exit_code is None
    assert result.killed_reason == "Execution timed out after 2 s"
    assert result.logs == "spinning\n"  # output printed before the kill is kept
    assert result.duration >= 2


async def test_cpu_limit_kills_a_busy_loop(workdir: Path) -> None:
    # A generous wall limit: on a loaded machine one CPU second can take several wall seconds.
    result = await run("while True:\n    pass", workdir, Limits(cpu_seconds=1, wall_seconds=30))
    assert result.timed_out
    assert result.killed_reason == "CPU time limit of 1 s exceeded"


async def test_allocating_2_gib_exceeds_the_memory_limit(workdir: Path) -> None:
    result = await run("data = bytearray(2 * 1024**3)\nprint('allocated')", workdir)
    assert result.memory_exceeded
    assert result.killed_reason == "Memory limit of 512 MiB exceeded"
    assert "MemoryError" in result.logs and "allocated" not in result.logs
    assert not result.timed_out


def _under_tmp(paths: list[str]) -> list[str]:
    return [p for p in paths if os.path.normpath(p).startswith("/tmp/")]


async def test_writes_only_land_in_the_workdir(workdir: Path) -> None:
    (workdir / "input.csv").write_text("a,b\n1,2\n")
    targets = ["/etc/x", str(REPO / "x"), "/root/x", "/x", "/usr/x", "/tmp/../x"]
    code = (
        f"for path in {targets!r}:\n"
        "    try:\n"
        "        open(path, 'w').write('x')\n"
        "        print('WROTE', path)\n"
        "    except OSError as exc:\n"
        "        print('refused', path, type(exc).__name__)\n"
        "import os\n"
        "os.makedirs('out', exist_ok=True)\n"
        "open('out/result.txt', 'w').write(open('input.csv').read().upper())\n"
        "os.symlink('/etc/passwd', 'link')\n"
        "open('/tmp/scratch', 'w').write('tmp is writable but not reported')\n"
    )
    result = await run(code, workdir)
    # A checkout under /tmp lands on the sandbox's own private /tmp, which is writable and
    # thrown away: what matters is that nothing reached the host.
    private = _under_tmp(targets)
    for target in targets:
        if target in private:
            continue
        assert f"WROTE {target}\n" not in result.logs, result.logs
        assert f"refused {target} " in result.logs, result.logs
    assert not any(map(os.path.lexists, targets))
    assert result.files == [Path("out/result.txt")]  # input.csv unchanged; the symlink is never reported
    assert (workdir / "out" / "result.txt").read_text() == "A,B\n1,2\n"


async def test_file_size_limit(workdir: Path) -> None:
    result = await run(
        "open('big.bin', 'wb').write(b'x' * (2 * 1024 * 1024))",
        workdir,
        Limits(max_file_bytes=1024 * 1024, wall_seconds=60),
    )
    assert "OSError: [Errno 27] File too large" in result.logs
    assert (workdir / "big.bin").stat().st_size <= 1024 * 1024


async def test_output_is_capped_with_a_marker(workdir: Path) -> None:
    result = await run(
        "for i in range(20_000):\n    print(i)\nprint('the end')",
        workdir,
        Limits(max_output_bytes=4096, wall_seconds=60),
    )
    assert result.output_truncated and result.exit_code == 0
    assert result.logs.startswith("0\n1\n2\n")
    assert result.logs.endswith("the end\n")
    assert "[... output truncated:" in result.logs
    assert len(result.logs) < 4096 + 200


async def test_numpy_pandas_and_matplotlib_work(workdir: Path) -> None:
    code = (
        "import numpy as np, pandas as pd\n"
        "import matplotlib.pyplot as plt\n"
        "df = pd.DataFrame({'x': np.arange(5), 'y': np.arange(5) ** 2})\n"
        "print(df['y'].sum())\n"
        "plt.plot(df['x'], df['y'])\n"
        "plt.savefig('plot.png')\n"
    )
    result = await run(code, workdir)
    assert result.exit_code == 0, result.logs
    assert result.logs == "30\n"  # no font-cache rebuild or fontconfig noise
    assert result.files == [Path("plot.png")]
    assert (workdir / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


async def test_cancelling_execute_kills_the_sandbox(workdir: Path) -> None:
    code = "import time\nwhile True:\n    open('tick', 'w').write(str(time.time()))\n    time.sleep(0.05)\n"
    task = asyncio.create_task(run(code, workdir))
    await asyncio.sleep(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    tick = workdir / "tick"
    assert tick.exists()
    stamp = tick.read_text()
    await asyncio.sleep(0.3)
    assert tick.read_text() == stamp  # nothing is writing any more


async def test_concurrent_executions_are_isolated(workdir: Path) -> None:
    other = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    try:
        (other / "mine.txt").write_text("other")
        (workdir / "yours.txt").write_text("this")
        code = "import os, time\ntime.sleep(0.3)\nprint(sorted(os.listdir('.')))"
        a, b = await asyncio.gather(run(code, workdir), run(code, other))
        assert a.logs == "['yours.txt']\n" and b.logs == "['mine.txt']\n"
    finally:
        shutil.rmtree(other, ignore_errors=True)


async def test_missing_bwrap_raises_sandbox_unavailable(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bwrap.shutil, "which", lambda name: None)  # type: ignore[attr-defined]
    with pytest.raises(SandboxUnavailable, match="apt-get install bubblewrap"):
        await run("print(1)", workdir)


async def test_missing_sandbox_venv_is_reported(workdir: Path, settings) -> None:
    settings.CODE_INTERPRETER_VENV = str(workdir / "no-venv")
    assert sandbox.available() is False
    with pytest.raises(SandboxUnavailable, match=r"scripts/sandbox-venv\.sh"):
        await run("print(1)", workdir)
