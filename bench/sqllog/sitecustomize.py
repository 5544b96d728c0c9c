"""Log every SQL statement a Django process runs, with its thread: how the benchmarks' statement
counts per run were taken (docs/benchmarks.md, eighth session).

Python imports `sitecustomize` at start-up from the path, so putting this directory on PYTHONPATH
reaches every process a benchmark starts (the server, run_worker, the set-up commands):

    BENCH_SQL_LOG=/tmp/sql PYTHONPATH=bench/sqllog .venv/bin/python -m bench.bench_capacity \
        --setups embedded --streams 1 --tokens 20 --rate 50 --runs 5 --run-parallel 1 --burst 0 --paths sse

Each process appends "<unix time>\t<thread name>\t<statement>" lines to $BENCH_SQL_LOG.<pid>.
Without BENCH_SQL_LOG this does nothing. A benchmarking aid only: never on a server's path.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

_target = os.environ.get("BENCH_SQL_LOG")
if _target:
    import django.db.backends.utils as _utils

    _out = open(f"{_target}.{os.getpid()}", "a", buffering=1)
    _execute = getattr(_utils.CursorWrapper, "_execute")  # noqa: B009 (private to django-stubs)

    def _logged(self: Any, sql: str, params: Any, *args: Any, **kwargs: Any) -> Any:
        statement = " ".join(str(sql).split())
        _out.write(f"{time.time():.4f}\t{threading.current_thread().name}\t{statement}\n")
        return _execute(self, sql, params, *args, **kwargs)

    setattr(_utils.CursorWrapper, "_execute", _logged)  # noqa: B010
