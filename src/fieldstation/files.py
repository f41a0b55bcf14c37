"""Files that hold key hashes and readings are created readable by their owner only (0600)."""

from __future__ import annotations

import os

#: Owner read and write; SQLite gives its -wal and -shm files the database file's mode.
PRIVATE = 0o600


def create_private(path: str | os.PathLike[str] | None) -> None:
    """Create ``path`` empty with mode 0600 unless it exists (an existing file keeps its mode).

    SQLite and pg_dump would create it with the process's umask (0644 as a rule),
    world-readable, though it holds password and key hashes.
    """
    if not path or str(path) == ":memory:" or str(path).startswith("file:"):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    except OSError:  # it exists, or its folder does not (SQLite then says so on first use)
        return
    os.close(fd)
