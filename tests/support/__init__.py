"""The test harness: the live server, the stack (database, Redis) and phase 2's selection, the named
users, small helpers."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
