"""Consistent backups of the database while the server runs.

SQLite: the online backup API copies a consistent snapshot page by page
without stopping writers (sqlite.org/backup.html). PostgreSQL: ``pg_dump``
in its custom format, restorable with ``pg_restore``.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy.engine import make_url

from fieldstation.errors import BadRequest
from fieldstation.files import create_private


def backup(database_url: str, target: Path) -> Path:
    """Write a backup of ``database_url`` to ``target`` and return its path.

    :raise BadRequest: the target exists, or the engine is not supported.
    """
    if target.exists():
        raise BadRequest(f"{target} exists; choose a new file")
    url = make_url(database_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    create_private(target)
    if url.get_backend_name() == "sqlite":
        return _backup_sqlite(url.database or "", target)
    if url.get_backend_name() == "postgresql":
        return _backup_postgres(
            url.set(drivername="postgresql").render_as_string(hide_password=False), target
        )
    raise BadRequest(f"no backup method for {url.get_backend_name()}")


def _backup_sqlite(path: str, target: Path) -> Path:
    if not Path(path).exists():
        raise BadRequest(f"no database at {path}")
    source = sqlite3.connect(path)
    dest = sqlite3.connect(target)
    try:
        with dest:
            source.backup(dest, pages=1024)
    finally:
        dest.close()
        source.close()
    return target


def _backup_postgres(url: str, target: Path) -> Path:
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        raise BadRequest("pg_dump is not installed (Debian: postgresql-client)")
    result = subprocess.run(
        [pg_dump, "--format=custom", "--file", str(target), "--dbname", url],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        target.unlink(missing_ok=True)
        raise BadRequest(f"pg_dump failed: {result.stderr.strip()[-300:]}")
    return target
