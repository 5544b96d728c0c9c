"""Phase 2's selection (tests/support/stack.py): every test that uses the database, Redis or the live
server is kept, and only those. The file-search tests were once left out of phase 2 by a forgotten
marker; here they must be selected because of what they use."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.support import ROOT

FILE_SEARCH = ["tests/tools/file_search", "tests/api/test_vector_stores.py"]
NO_SERVICES = "tests/web/test_rendering.py"  # pure rendering: nothing from the stack


def _collect(*args: str) -> dict[str, int]:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-o",
            "addopts=",
            "-p",
            "no:cacheprovider",
            "--collect-only",
            "-q",
            *args,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    counts: dict[str, int] = {}
    for line in done.stdout.splitlines():
        match = re.fullmatch(r"(tests/\S+\.py)::\S.*", line.strip())
        if match:
            counts[match[1]] = counts.get(match[1], 0) + 1
    return counts


def test_phase_2_keeps_every_file_search_test_and_drops_tests_that_use_no_service() -> None:
    everything = _collect(*FILE_SEARCH, NO_SERVICES)
    phase2 = _collect("--only-stack-tests", *FILE_SEARCH, NO_SERVICES)
    file_search = {path: n for path, n in everything.items() if path != NO_SERVICES}
    assert len(file_search) >= 4 and all(n > 0 for n in file_search.values()), everything
    assert {path: n for path, n in phase2.items() if path != NO_SERVICES} == file_search
    # Positive control: the selection does select, so the first assertion is not vacuous.
    assert everything[NO_SERVICES] > 0 and NO_SERVICES not in phase2
