"""The DURABILITY setting reaches every way Fieldstation talks to the database (issue 17, item 5)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask

from fieldstation import db as database
from fieldstation.config import ConfigError
from fieldstation.extensions import db
from tests.conftest import make_app

#: What each engine reports for each setting.
EXPECTED = {
    ("sqlite", "power-loss"): "2",  # FULL
    ("sqlite", "process"): "1",  # NORMAL
    ("postgresql", "power-loss"): "on",
    ("postgresql", "process"): "off",
}


def _setting(cursor_owner: object, dialect: str) -> str:
    query = "PRAGMA synchronous" if dialect == "sqlite" else "SHOW synchronous_commit"
    cursor = cursor_owner.cursor()  # type: ignore[attr-defined]
    cursor.execute(query)
    value = str(cursor.fetchone()[0])
    cursor.close()
    return value


def _every_route(app: Flask) -> dict[str, str]:
    """The sync setting as the session, a pooled DBAPI connection and an autocommit read see it."""
    with app.app_context():
        dialect = db.engine.dialect.name
        query = "PRAGMA synchronous" if dialect == "sqlite" else "SHOW synchronous_commit"
        seen = {"session": str(db.session.execute(sa.text(query)).scalar())}
        db.session.rollback()
        raw = db.engine.raw_connection()
        try:
            seen["pooled"] = _setting(raw, dialect)
        finally:
            raw.close()
        with app.test_request_context(), database.autocommit_connection() as (connection, _):
            seen["autocommit"] = _setting(connection, dialect)
        database.release_request_connection()
        db.session.remove()
        db.engine.dispose()
    return seen


def test_default_is_power_loss_safe_on_every_route(app: Flask) -> None:
    assert app.config["DURABILITY"] == "power-loss"
    fresh = make_app(app.config["DATABASE_URL"], Path(app.instance_path))
    dialect = "sqlite" if app.config["DATABASE_URL"].startswith("sqlite") else "postgresql"
    want = EXPECTED[(dialect, "power-loss")]
    assert _every_route(fresh) == {"session": want, "pooled": want, "autocommit": want}


def test_process_setting_on_every_route(app: Flask) -> None:
    fresh = make_app(app.config["DATABASE_URL"], Path(app.instance_path), DURABILITY="process")
    dialect = "sqlite" if app.config["DATABASE_URL"].startswith("sqlite") else "postgresql"
    want = EXPECTED[(dialect, "process")]
    assert _every_route(fresh) == {"session": want, "pooled": want, "autocommit": want}


def test_unknown_durability_is_refused(app: Flask) -> None:
    with pytest.raises(ConfigError, match="DURABILITY"):
        make_app(app.config["DATABASE_URL"], Path(app.instance_path), DURABILITY="sometimes")
