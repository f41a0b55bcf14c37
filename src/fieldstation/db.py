"""Engine set-up: the one place (with store/query) that knows SQL dialects."""

from __future__ import annotations

import select
import time
from typing import Any

from flask import Flask
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DisconnectionError

from fieldstation import durability
from fieldstation.extensions import db
from fieldstation.files import create_private


def init_app(app: Flask) -> None:
    """Bind the database to ``app`` and set per-connection SQLite pragmas."""
    durable = durability.power_loss_safe(app.config)
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        durability.postgres_options(app.config, durable)
    db.init_app(app)
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            create_private(engine.url.database)
            _configure_sqlite(engine, int(app.config["SQLITE_BUSY_TIMEOUT_MS"]), durable)
        elif engine.dialect.name == "postgresql" and not engine.pool._pre_ping:
            _check_on_checkout(engine)


def _configure_sqlite(engine: Engine, busy_timeout_ms: int, durable: bool) -> None:
    """WAL for concurrent readers, foreign keys on, a busy timeout for a second writer, and the
    DURABILITY setting's sync level (:mod:`fieldstation.durability`)."""

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.close()


#: A pooled connection idle longer than this is pinged with a round trip before use (seconds).
IDLE_PING_S = 10.0


def _check_on_checkout(engine: Engine) -> None:
    """Check pooled PostgreSQL connections before use, without a round trip when it is safe.

    ``pool_pre_ping`` sends a statement on every checkout, a round trip that
    cost a single-reading write as much as the write itself. A server that
    restarts, terminates the backend or times the session out closes the socket
    (after a FATAL message), so a connection used moments ago whose socket has
    nothing to read is alive; only then is the ping skipped. A connection idle
    longer than :data:`IDLE_PING_S` (a silent network may have dropped it
    meanwhile), or with anything waiting on its socket, gets the ping; when it
    fails, the pool replaces the connection, as pre-ping would.
    """

    @event.listens_for(engine, "checkin")
    def _returned(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:
            record.info["fieldstation_returned"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _check(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("fieldstation_returned")
        if returned is None:  # just connected
            return
        if time.monotonic() - returned < IDLE_PING_S and _quiet(dbapi_connection):
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"pooled connection is gone: {exc}") from exc


def _quiet(dbapi_connection: Any) -> bool:
    """True when a psycopg connection is open, idle, and the server has sent it nothing."""
    from psycopg import pq

    pgconn = dbapi_connection.pgconn
    if dbapi_connection.closed or pgconn.status != pq.ConnStatus.OK:
        return False
    if pgconn.transaction_status != pq.TransactionStatus.IDLE:
        return False
    poller = select.poll()
    poller.register(pgconn.socket, select.POLLIN | select.POLLERR | select.POLLHUP)
    return not poller.poll(0)
