"""Open SQLite connections that no thread is using, kept for the next thread that connects.

Django's ASGI handler runs each request's sync code on a thread of its own, and connections belong
to threads, so every request opened the database file and closed it again at its end: connect, the
WAL pragmas, registering Django's ~30 SQL functions, and re-reading the schema on the first query.
That was ~1 ms of CPU per request here and, in the capacity benchmark's profile, about a tenth of
what a short run cost. A closed connection now waits here instead (rolled back, outside any
transaction), and the next connect to the same file takes it.

Django already opens SQLite connections shareable between threads (check_same_thread=False) and
guards their use itself; one of these is only ever in one thread's hands at a time. A connection is
keyed by its file's identity (device, inode), so a database deleted and created again under the same
name (the test runner does that) never gets a connection to the old file. After a fork the child
never uses its parent's: SQLite connections must not cross a fork.
"""

from __future__ import annotations

import os
import sqlite3
import threading

# Idle connections kept per database file; more than this many closing at once are really closed.
# Each holds three file descriptors (the database, its -wal and its -shm).
MAX_IDLE = 16

Key = tuple[str, int, int]

_idle: dict[Key, list[sqlite3.Connection]] = {}
_lock = threading.Lock()


def key_of(path: str) -> Key | None:
    """The file's identity, or None for anything that is not a plain existing file."""
    if not path or path.startswith("file:") or path == ":memory:":
        return None
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_dev, st.st_ino)


def take(path: str) -> tuple[sqlite3.Connection | None, Key | None]:
    """An idle connection to `path` if there is one, and the key to give it back under."""
    key = key_of(path)
    if key is None:
        return None, None
    stale: list[sqlite3.Connection] = []
    with _lock:
        for other in [k for k in _idle if k[0] == path and k != key]:
            stale += _idle.pop(other)  # the file was replaced: those point at the old one
        conns = _idle.get(key)
        conn = conns.pop() if conns else None
    for old in stale:
        _close_quietly(old)
    return conn, key


def give(key: Key | None, conn: sqlite3.Connection) -> bool:
    """Keep `conn` for reuse; False when it must be closed instead (the caller closes it)."""
    if key is None:
        return False
    try:
        if conn.in_transaction:
            conn.rollback()
    except sqlite3.Error:
        return False
    with _lock:
        conns = _idle.setdefault(key, [])
        if len(conns) >= MAX_IDLE:
            return False
        conns.append(conn)
    return True


def count(path: str | None = None) -> int:
    with _lock:
        return sum(len(v) for k, v in _idle.items() if path is None or k[0] == path)


def close_all() -> None:
    with _lock:
        conns = [c for v in _idle.values() for c in v]
        _idle.clear()
    for conn in conns:
        _close_quietly(conn)


def _close_quietly(conn: sqlite3.Connection) -> None:
    try:
        conn.close()
    except sqlite3.Error:
        pass


# A child keeps its parent's connections referenced and never touches them: closing one there would
# run SQLite's last-connection cleanup on a file the parent is using.
_inherited: list[sqlite3.Connection] = []


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()
    _inherited.extend(c for v in _idle.values() for c in v)
    _idle.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
