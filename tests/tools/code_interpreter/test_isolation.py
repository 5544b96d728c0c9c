"""Per-execution cgroups, the seccomp filter and the workdir quota, with real processes under bwrap."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from assistants_app.tools.code_interpreter import cgroups, sandbox
from assistants_app.tools.code_interpreter import workdir as wd
from assistants_app.tools.code_interpreter.sandbox import ExecutionResult, Limits, execute

MiB = 1024 * 1024
_problem = sandbox._probe_namespaces()
pytestmark = [
    pytest.mark.skipif(_problem is not None, reason=f"bubblewrap cannot run here: {_problem}"),
    pytest.mark.usefixtures("sandbox_venv"),
]
needs_cgroups = pytest.mark.skipif(
    cgroups.detect().version is None, reason=f"no per-execution cgroups: {cgroups.detect().problem}"
)


@pytest.fixture
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="sandbox-test-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def limits(**overrides: float) -> Limits:
    return Limits(**{"cpu_seconds": 20, "wall_seconds": 60, **overrides})  # type: ignore[arg-type]


async def run(code: str, workdir: Path, lim: Limits | None = None) -> ExecutionResult:
    return await execute(code, workdir, limits=lim or limits())


def _exec_cgroups() -> list[Path]:
    """Execution cgroups (and their parents) still present in the server's cgroup."""
    support = cgroups.detect()
    return [p for p in support.parents.values() if p.exists()]


# Children that each hold `size` bytes for a while; the parent reports how many came back healthy.
_CHILDREN = """
import os, time
pids = []
for i in range({n}):
    pid = os.fork()
    if pid == 0:
        {work}
        os._exit(0)
    pids.append(pid)
ok = sum(os.waitpid(p, 0)[1] == 0 for p in pids)
print('children ok:', ok)
"""


@needs_cgroups
async def test_six_processes_of_400_mib_are_killed_under_a_512_mib_limit(workdir: Path) -> None:
    work = "data = b'x' * (400 * 1024 * 1024); time.sleep(3)"
    result = await run(_CHILDREN.format(n=6, work=work), workdir, limits(memory_bytes=512 * MiB))
    assert result.memory_exceeded
    assert result.killed_reason == "Memory limit of 512 MiB exceeded"
    assert "children ok" not in result.logs  # the whole execution went, not just one child
    assert _exec_cgroups() == []  # and its cgroup was removed, nothing left in the server's


@needs_cgroups
async def test_processes_within_the_memory_limit_together_run(workdir: Path) -> None:
    # Positive control for the test above: the same shape, 6 x 40 MiB, fits in 512 MiB.
    work = "data = b'x' * (40 * 1024 * 1024); time.sleep(0.5)"
    result = await run(_CHILDREN.format(n=6, work=work), workdir, limits(memory_bytes=512 * MiB))
    assert result.exit_code == 0 and result.killed_reason is None, result.logs
    assert "children ok: 6" in result.logs


@needs_cgroups
async def test_parallel_cpu_burners_stop_at_the_execution_cpu_budget(workdir: Path) -> None:
    # Each child alone stays under RLIMIT_CPU (2 s); four of them together are well over 2 s.
    work = "t = time.process_time()\n        while time.process_time() - t < 1.8: pass"
    result = await run(_CHILDREN.format(n=4, work=work), workdir, limits(cpu_seconds=2))
    assert result.timed_out and result.exit_code is None
    assert result.killed_reason == "CPU time limit of 2 s exceeded"
    assert "children ok" not in result.logs


@needs_cgroups
async def test_the_sandbox_is_in_its_cgroup_before_it_starts(workdir: Path) -> None:
    # bwrap creates the sandbox's cgroup namespace at its current cgroup: "/" for every controller
    # means bwrap was already in the execution's cgroup when it started (not moved in later).
    result = await run("print(open('/proc/self/cgroup').read())", workdir)
    lines = dict(line.split(":", 2)[1:] for line in result.logs.split())
    wanted = ["memory", "pids", "cpuacct"] if cgroups.detect().version == 1 else [""]
    assert all(lines.get(name) == "/" for name in wanted), result.logs


async def test_seccomp_denies_what_analysis_code_never_needs(workdir: Path) -> None:
    code = """
import ctypes, errno, os
libc = ctypes.CDLL(None, use_errno=True)
def call(name, nr, *args):
    ctypes.set_errno(0)
    rc = libc.syscall(nr, *args)
    print(name, rc, errno.errorcode.get(ctypes.get_errno(), 0) if rc == -1 else 'ok')
call('io_uring_setup', 425, 1, None)
call('ptrace', 101, 0, 0, 0, 0)        # PTRACE_TRACEME
call('bpf', 321, 0, None, 0)
call('keyctl', 250, 0, -3, 0)           # KEYCTL_GET_KEYRING_ID of the session keyring
call('userfaultfd', 323, 0)
call('perf_event_open', 298, None, 0, -1, -1, 0)
call('unshare', 272, 0x00020000)        # CLONE_NEWNS
call('mount', 165, b'none', b'/tmp', b'tmpfs', 0, None)
call('clone_newnet', 56, 0x40000000 | 17, None, None, None, None)
import threading, subprocess
t = threading.Thread(target=lambda: print('thread ran')); t.start(); t.join()
print(subprocess.run(['python3', '-c', 'print(6 * 7)'], capture_output=True, text=True).stdout.strip())
"""
    result = await run(code, workdir)
    if sandbox._seccomp_problem() is not None:
        pytest.skip(sandbox._seccomp_problem() or "")
    for name in (
        "io_uring_setup",
        "ptrace",
        "bpf",
        "keyctl",
        "userfaultfd",
        "perf_event_open",
        "unshare",
        "mount",
        "clone_newnet",
    ):
        assert f"{name} -1 EPERM" in result.logs, result.logs
    # What ordinary code uses still works: threads (clone3 -> ENOSYS -> clone) and subprocesses.
    assert "thread ran" in result.logs and "\n42\n" in result.logs, result.logs


async def test_workdir_quota_stops_an_execution_while_it_writes(workdir: Path) -> None:
    (workdir / "kept.csv").write_text("a,b\n1,2\n")
    code = (
        "import os, time\n"
        "for i in range(12):\n"
        "    with open(f'part{i}.bin', 'wb') as f:\n"
        "        f.write(os.urandom(8 * 1024 * 1024))\n"
        "print('all written', flush=True)\n"
        "time.sleep(50)\n"
    )
    lim = limits(workdir_bytes=32 * MiB, max_file_bytes=10 * MiB)
    result = await run(code, workdir, lim)
    assert result.disk_exceeded and not result.timed_out  # the monitor, not the 60 s wall clock
    assert result.killed_reason is not None and result.killed_reason.startswith("Disk quota of /mnt/data")
    assert result.files == []
    assert sorted(os.listdir(workdir)) == ["kept.csv"]  # its files removed, not ours
    assert os.stat(workdir / "kept.csv").st_size == len("a,b\n1,2\n")


async def test_workdir_entry_limit_stops_a_flood_of_empty_files(workdir: Path) -> None:
    code = "import os\nos.makedirs('d')\nfor i in range(3000):\n    open(f'd/{i}', 'w').close()\nimport time; time.sleep(50)"
    result = await run(code, workdir, limits(workdir_max_files=500))
    assert result.disk_exceeded
    assert "more than 500 files and directories" in (result.killed_reason or "")
    assert os.listdir(workdir) == []


async def test_writes_within_the_quota_are_kept(workdir: Path) -> None:
    code = "for i in range(3):\n    open(f'part{i}.bin', 'wb').write(b'x' * (4 * 1024 * 1024))"
    result = await run(code, workdir, limits(workdir_bytes=32 * MiB, max_file_bytes=10 * MiB))
    assert result.exit_code == 0 and not result.disk_exceeded, result.logs
    assert result.files == [Path("part0.bin"), Path("part1.bin"), Path("part2.bin")]


async def test_execution_without_cgroups_still_runs_and_says_what_is_enforced(
    workdir: Path, settings, caplog
) -> None:
    settings.CODE_INTERPRETER_CGROUPS = "off"
    cgroups.detect.cache_clear()
    sandbox._warn_once.cache_clear()
    try:
        result = await run("print('still here')", workdir)
        assert result.logs == "still here\n"
        warnings = sandbox.status()
        assert any(
            "no per-execution cgroup (disabled by CODE_INTERPRETER_CGROUPS=off)" in w for w in warnings
        )
        assert any("RLIMIT_AS 512 MiB" in w for w in warnings)
        assert "no per-execution cgroup" in caplog.text
    finally:
        cgroups.detect.cache_clear()
        sandbox._warn_once.cache_clear()


def test_scan_never_descends_into_a_linked_directory(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("host")
    work = tmp_path / "work"
    work.mkdir()
    (work / "sub").mkdir()
    (work / "sub" / "real.txt").write_text("x")
    (work / "linked").symlink_to(outside)
    os.mkfifo(work / "fifo")
    with wd.opened(os.open(work, wd.O_DIR)) as fd:
        found = wd.scan(fd)
        assert sorted(found.files) == ["sub/real.txt"]
        assert found.paths == {"sub", "sub/real.txt", "linked", "fifo"}
        with pytest.raises(OSError):
            wd.open_regular(fd, "linked/secret.txt")
        with pytest.raises(wd.UnsafeEntry):
            wd.open_regular(fd, "fifo")  # and it did not block
        assert wd.read_regular(fd, "sub/real.txt", 10) == b"x"


def test_admin_index_warns_about_missing_cgroups_and_seccomp(client, staff, settings) -> None:
    client.force_login(staff)
    normal = client.get("/admin/").content.decode()
    expected_missing = sandbox.status()  # what this machine lacks anyway (normally nothing)
    assert ("Code interpreter isolation is degraded" in normal) == bool(expected_missing)
    settings.CODE_INTERPRETER_CGROUPS = "off"
    settings.CODE_INTERPRETER_SECCOMP = False
    cgroups.detect.cache_clear()
    sandbox._seccomp_problem.cache_clear()
    try:
        page = client.get("/admin/").content.decode()
    finally:
        cgroups.detect.cache_clear()
        sandbox._seccomp_problem.cache_clear()
    assert "Code interpreter isolation is degraded" in page
    assert "no per-execution cgroup (disabled by CODE_INTERPRETER_CGROUPS=off)" in page
    assert "Enforced instead, per process only: RLIMIT_AS 512 MiB" in page
    assert "no seccomp filter: disabled by CODE_INTERPRETER_SECCOMP=0" in page


def test_cgroup_v2_files_on_a_delegated_tree(tmp_path: Path) -> None:
    """The v2 protocol against a stand-in tree (these machines only have v1 controllers): the
    server moves into a leaf, enables memory and pids for siblings, and sets and reads the limits."""
    own = tmp_path / "service"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (own / "cgroup.subtree_control").write_text("")
    (own / "cgroup.procs").write_text(f"{os.getpid()}\n")
    support = cgroups._v2({"": tmp_path}, {"": "/service"})
    assert support.version == 2 and support.parents == {"": own / cgroups.GROUP}
    assert (own / "server" / "cgroup.procs").read_text() == str(os.getpid())
    assert (own / "cgroup.subtree_control").read_text() == "+memory +pids"

    cg = cgroups.ExecutionCgroup(support, memory_bytes=512 * MiB, max_processes=64)
    path = cg.paths[""]
    assert (path / "memory.max").read_text() == str(512 * MiB)
    assert (path / "memory.swap.max").read_text() == "0"
    assert (path / "memory.oom.group").read_text() == "1"
    assert (path / "pids.max").read_text() == "64"
    (path / "cpu.stat").write_text("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n")
    (path / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 1\n")
    (path / "pids.events").write_text("max 0\n")
    assert cg.cpu_seconds() == 2.5 and cg.oom_killed() and not cg.pids_limited()
    cg.kill()
    assert (path / "cgroup.kill").read_text() == "1"
    # A second process of the same server finds itself in the leaf and uses the same parent.
    (own / "server" / "cgroup.controllers").write_text("memory pids\n")
    again = cgroups._v2({"": tmp_path}, {"": "/service/server"})
    assert again.version == 2 and again.parents == support.parents


def test_cgroup_v2_without_delegated_controllers_is_reported(tmp_path: Path) -> None:
    own = tmp_path / "user.slice"
    own.mkdir()
    (own / "cgroup.controllers").write_text("cpu io\n")
    support = cgroups._v2({"": tmp_path}, {"": "/user.slice"})
    assert support.version is None
    assert support.problem == f"cgroup v2: controllers memory, pids not delegated to {own}"
