"""Whether the database is set up: reachable, and migrated to the revision this code needs.

``fieldstation serve`` refuses a database that is behind (every request would
fail on a missing table or column), and the CLI turns a database error into one
line that says what to do, instead of SQLAlchemy's traceback.
"""

from __future__ import annotations

import os

from sqlalchemy import exc as sa_exc
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine, make_url

from fieldstation.instance import MIGRATIONS

#: The newest migration: what this code's models expect. Kept here so that checking a database
#: needs one query and no Alembic; tests/test_cli.py holds it to the migrations' real head.
HEAD = "0015_trapezoids"
#: Alembic ``-x`` argument under which migrations/env.py leaves Alembic's log lines off.
QUIET = "quiet"


class DatabaseNotReady(RuntimeError):
    """The database cannot be used as it is; the message says what to do, on one line."""


def head_revisions() -> set[str]:
    """The revisions the code's models expect (the migrations' heads)."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return set(ScriptDirectory.from_config(config).get_heads())


def current_revisions(engine: Engine) -> set[str]:
    """The revisions the database is at: empty for a database never migrated."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return set()
        return set(conn.execute(text("SELECT version_num FROM alembic_version")).scalars())


def check_migrated(engine: Engine) -> None:
    """Return when the database is at the migrations' head.

    :raise DatabaseNotReady: unreachable, never initialised, or behind the code.
    """
    where = describe(engine)
    if _missing_sqlite_file(engine):  # connecting would create it, empty and world-readable
        raise DatabaseNotReady(f"database {where} is not initialised: run `fieldstation init`")
    try:
        current = current_revisions(engine)
    except sa_exc.DBAPIError as exc:
        raise DatabaseNotReady(explain(exc, engine)) from None
    if not current:
        raise DatabaseNotReady(f"database {where} is not initialised: run `fieldstation init`")
    if current != {HEAD}:
        raise DatabaseNotReady(
            f"database {where} is at revision {', '.join(sorted(current))}, this version needs "
            f"{HEAD}: run `fieldstation db upgrade`"
        )


def _missing_sqlite_file(engine: Engine) -> bool:
    """A SQLite database whose file does not exist (yet): SQLite would make one on connecting,
    with the umask's mode, and ``init`` would keep that mode (files.create_private makes it 0600)."""
    name = engine.url.database
    if engine.dialect.name != "sqlite" or not name or name == ":memory:" or name.startswith("file:"):
        return False
    return not os.path.exists(name)


def describe(engine: Engine) -> str:
    """The engine's URL without its password."""
    return make_url(engine.url).render_as_string(hide_password=True)


def explain(exc: sa_exc.DBAPIError, engine: Engine) -> str:
    """One line for a database error a user can fix: missing tables, or a server out of reach."""
    where = describe(engine)
    detail = " ".join(str(exc.orig).split()) if exc.orig is not None else str(exc)
    if "no such table" in detail or type(exc.orig).__name__ == "UndefinedTable":
        return f"database {where} is not initialised: run `fieldstation init`"
    if "UndefinedColumn" == type(exc.orig).__name__ or "no such column" in detail:
        return f"database {where} is behind this version ({detail[:120]}): run `fieldstation db upgrade`"
    return f"cannot use database {where}: {detail[:300]}"
