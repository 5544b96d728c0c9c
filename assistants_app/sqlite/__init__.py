"""Django's SQLite backend with write transactions queued inside the process (see base.py)."""
