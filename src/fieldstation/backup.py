"""Backups that always finish and never lie, and a restore that checks before it replaces.

SQLite: ``VACUUM INTO`` copies the database as one read transaction sees it; in
WAL mode writers go on meanwhile and nothing makes it start over, so it ends in
time proportional to the database, whatever the write rate. (The online backup
API copying a few pages per step restarted on every commit of another
connection, and under ~40 writes/s on 61 MiB never finished.) PostgreSQL:
``pg_dump --format=custom``.

Both write to a hidden temporary name beside the target, check what they wrote
(SQLite: ``PRAGMA integrity_check`` and Fieldstation's schema; PostgreSQL:
``pg_restore`` reads every entry to the end, which a cut file fails) and only
then give it the target's name, without ever replacing a file there. A backup
killed half-way leaves at most the temporary file, never a file at the target
that looks like a backup.

:func:`restore` runs the same checks on a backup before it touches the database.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.engine import make_url

from fieldstation.errors import BadRequest
from fieldstation.files import create_private

#: Called with a line of progress (long backups and restores say how far they are).
Progress = Callable[[str], None]
#: Seconds between progress lines.
PROGRESS_EVERY_S = 2.0
_SQLITE_MAGIC = b"SQLite format 3\x00"
#: Tables a Fieldstation database has at every revision.
_OUR_TABLES = ("alembic_version", "users", "channels", "readings")


def _quiet(_line: str) -> None:
    pass


def backup(database_url: str, target: Path, progress: Progress = _quiet) -> Path:
    """Write a checked backup of ``database_url`` to ``target`` and return its path.

    :raise BadRequest: the target exists, the engine is not supported, or the copy
        failed its check (nothing is left at the target then).
    """
    if target.exists():
        raise BadRequest(f"{target} exists; choose a new file")
    url = make_url(database_url)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    partial.unlink(missing_ok=True)
    create_private(partial)
    try:
        if url.get_backend_name() == "sqlite":
            _backup_sqlite(url.database or "", partial, progress)
            check_sqlite(partial)
        elif url.get_backend_name() == "postgresql":
            _backup_postgres(_libpq_url(database_url), partial, progress)
            check_postgres(partial)
        else:
            raise BadRequest(f"no backup method for {url.get_backend_name()}")
        _sync(partial)
        _publish(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return target


def _libpq_url(database_url: str) -> str:
    return make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)


def _publish(partial: Path, target: Path) -> None:
    """Give the checked copy the target's name; a file that appeared there meanwhile is kept."""
    try:
        os.link(partial, target)  # fails if the target exists: never replaces one
    except FileExistsError:
        raise BadRequest(f"{target} exists; choose a new file") from None
    _sync_folder(target.parent)


def _sync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# -- SQLite ----------------------------------------------------------------------------------


def _backup_sqlite(path: str, partial: Path, progress: Progress) -> None:
    if not Path(path).exists():
        raise BadRequest(f"no database at {path}")
    size = max(Path(path).stat().st_size, 1)
    source = sqlite3.connect(path, timeout=30)
    started = last = time.monotonic()

    def report() -> int:
        nonlocal last
        now = time.monotonic()
        if now - last >= PROGRESS_EVERY_S:
            last = now
            done = partial.stat().st_size if partial.exists() else 0
            progress(f"{done / 2**20:,.1f} of about {size / 2**20:,.1f} MiB in {now - started:.0f} s")
        return 0  # go on

    source.set_progress_handler(report, 100_000)
    try:
        source.execute("VACUUM INTO ?", (str(partial),))
    except sqlite3.Error as exc:
        raise BadRequest(f"backup failed: {exc}") from None
    finally:
        source.close()


def check_sqlite(path: Path) -> None:
    """A complete, intact SQLite database with Fieldstation's tables.

    :raise BadRequest: not SQLite, cut short or damaged, or another program's database.
    """
    with open(path, "rb") as handle:
        if handle.read(len(_SQLITE_MAGIC)) != _SQLITE_MAGIC:
            raise BadRequest(f"{path} is not an SQLite database")
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise BadRequest(f"{path} cannot be opened: {exc}") from None
    try:
        verdict = [row[0] for row in conn.execute("PRAGMA integrity_check(5)")]
        if verdict != ["ok"]:
            raise BadRequest(f"{path} is damaged or cut short: {'; '.join(verdict)[:300]}")
        names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        missing = [name for name in _OUR_TABLES if name not in names]
        if missing:
            raise BadRequest(f"{path} is not a Fieldstation database (no {', '.join(missing)})")
        if conn.execute("SELECT count(*) FROM alembic_version").fetchone()[0] != 1:
            raise BadRequest(f"{path} has no schema revision")
    except sqlite3.DatabaseError as exc:  # a cut file can fail before integrity_check answers
        raise BadRequest(f"{path} is damaged or cut short: {exc}") from None
    finally:
        conn.close()


def _restore_sqlite(path: str, source: Path, progress: Progress) -> None:
    """Copy the checked backup over the live database through SQLite's backup API.

    The destination is locked while its pages are replaced, so a running server's
    connections see the old database or the restored one, never a mix.
    """
    backup_db = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
    create_private(path)
    live = sqlite3.connect(path, timeout=30)
    started = time.monotonic()

    def step(_status: int, remaining: int, total: int) -> None:
        if time.monotonic() - started >= PROGRESS_EVERY_S:
            progress(f"{total - remaining:,} of {total:,} pages")

    try:
        backup_db.backup(live, pages=-1, progress=step)  # one step: nothing can make it start over
    except sqlite3.Error as exc:
        raise BadRequest(f"restore failed (the database is unchanged): {exc}") from None
    finally:
        live.close()
        backup_db.close()


# -- PostgreSQL ------------------------------------------------------------------------------


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BadRequest(f"{name} is not installed (Debian: postgresql-client)")
    return found


def _backup_postgres(url: str, partial: Path, progress: Progress) -> None:
    command = [_tool("pg_dump"), "--format=custom", "--verbose", "--file", str(partial), "--dbname", url]
    _run(command, progress, "pg_dump")


def _run(command: list[str], progress: Progress, what: str) -> None:
    """Run a PostgreSQL tool, passing its ``--verbose`` lines on as progress (at most every 2 s)."""
    with subprocess.Popen(command, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        lines: list[str] = []
        last = time.monotonic()
        for line in proc.stderr:
            lines.append(line.rstrip())
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                progress(line.strip())
        code = proc.wait()
    if code:
        errors = [line for line in lines if "error" in line.lower()] or lines[-3:]
        raise BadRequest(f"{what} failed: {' '.join(errors)[-300:]}")


def check_postgres(path: Path) -> None:
    """A complete custom-format dump of a Fieldstation database.

    ``pg_restore --list`` reads only the table of contents, which a cut file still
    has; restoring to a script reads every entry to its end, which it has not.

    :raise BadRequest: not a dump, cut short, or another program's database.
    """
    pg_restore = _tool("pg_restore")
    listing = subprocess.run([pg_restore, "--list", str(path)], capture_output=True, text=True, check=False)
    if listing.returncode:
        raise BadRequest(f"{path} is not a PostgreSQL custom-format dump: {listing.stderr.strip()[-200:]}")
    missing = [name for name in _OUR_TABLES if f"TABLE DATA public {name} " not in listing.stdout]
    if missing:
        raise BadRequest(f"{path} is not a Fieldstation database (no {', '.join(missing)})")
    full = subprocess.run(
        [pg_restore, "--file", os.devnull, str(path)], capture_output=True, text=True, check=False
    )
    if full.returncode or full.stderr.strip():
        raise BadRequest(f"{path} is cut short or damaged: {full.stderr.strip()[-300:]}")


def _restore_postgres(url: str, source: Path, progress: Progress) -> None:
    command = [
        _tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--single-transaction",
        "--exit-on-error", "--verbose", "--dbname", url, str(source),
    ]  # fmt: skip
    _run(command, progress, "pg_restore (the database is unchanged)")


# -- restore ---------------------------------------------------------------------------------


def restore(database_url: str, source: Path, progress: Progress = _quiet) -> None:
    """Replace the database's contents with the backup ``source``, after checking it whole.

    Nothing is changed when the check fails, and a failed restore changes nothing
    either (SQLite's backup API and ``pg_restore --single-transaction`` apply all
    or nothing). A backup of an older version needs ``fieldstation db upgrade`` after.

    :raise BadRequest: no such file, or it is cut short, damaged, or not a Fieldstation backup.
    """
    if not source.is_file():
        raise BadRequest(f"no backup at {source}")
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        check_sqlite(source)
        _restore_sqlite(url.database or "", source, progress)
    elif url.get_backend_name() == "postgresql":
        check_postgres(source)
        _restore_postgres(_libpq_url(database_url), source, progress)
    else:
        raise BadRequest(f"no restore method for {url.get_backend_name()}")
