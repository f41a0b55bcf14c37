"""The database: engine set-up, connections and transactions, and how the two engines differ.

Three ways reach the data, each where it pays (docs/architecture.md has the table):
the ORM session for the management side, ``text()`` on the session for the
aggregate queries, and fixed statements on the driver's own cursor for the hot
paths. The cursors come from here, over one of two routes: the session's
connection while the session has a transaction going (so a statement sees what
it wrote), else a pooled connection of the request's own (:func:`cursor`,
:func:`transaction`).

Every difference between SQLite and PostgreSQL that other modules need is a
named property of :class:`Dialect`; they write each statement once, with ``?``
placeholders, and :func:`per_dialect` binds it for both.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from flask import Flask, g, has_app_context, has_request_context
from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError

from fieldstation import durability, metrics
from fieldstation.extensions import db
from fieldstation.files import create_private

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Dialect:
    """What the rest of the code needs to know about one engine."""

    name: str
    #: Statements are round trips to a server (PostgreSQL): worth fusing into one.
    round_trips: bool
    #: Lists travel as one array parameter (PostgreSQL); SQLite takes them as JSON text.
    arrays: bool
    #: Large inserts go through COPY (PostgreSQL).
    copies: bool
    #: Transaction-scoped advisory locks exist (PostgreSQL); SQLite has one writer anyway.
    advisory_locks: bool
    #: ``executemany`` runs a statement per row, slower than one multi-row VALUES (SQLite).
    multirow_values: bool
    #: Float arithmetic beyond the float range raises (PostgreSQL) instead of giving ±Infinity.
    float_overflow_raises: bool

    def bind(self, statement: str) -> str:
        """A statement written with ``?`` in this driver's parameter style (no value is formatted in)."""
        return statement.replace("?", "%s") if self.name == "postgresql" else statement

    def in_list(self, column: str) -> str:
        """``column`` is one of the values bound to one ``?`` (see :meth:`list_param`)."""
        if self.arrays:
            return f"{column} = ANY(?)"
        return f"{column} IN (SELECT value FROM json_each(?))"  # noqa: S608

    def pairs(self, param: str) -> str:
        """A FROM item ``g(a, z)`` of the integer pairs bound as JSON text (``[[a, z], …]``) to ``:param``."""
        if self.name == "postgresql":
            return (
                "(SELECT (e->>0)::bigint AS a, (e->>1)::bigint AS z"  # noqa: S608
                f" FROM json_array_elements(CAST(:{param} AS json)) e) g"
            )
        return (
            "(SELECT json_extract(value, '$[0]') AS a, json_extract(value, '$[1]') AS z"  # noqa: S608
            f" FROM json_each(:{param})) g"
        )

    def list_param(self, values: Sequence[int]) -> Sequence[int] | str:
        """``values`` as the one parameter :meth:`in_list` binds."""
        return values if self.arrays else json.dumps(list(values))


SQLITE = Dialect(
    "sqlite",
    round_trips=False,
    arrays=False,
    copies=False,
    advisory_locks=False,
    multirow_values=True,
    float_overflow_raises=False,
)
POSTGRESQL = Dialect(
    "postgresql",
    round_trips=True,
    arrays=True,
    copies=True,
    advisory_locks=True,
    multirow_values=False,
    float_overflow_raises=True,
)
DIALECTS = {d.name: d for d in (SQLITE, POSTGRESQL)}


def per_dialect(build: Callable[[Dialect], T]) -> dict[str, T]:
    """A module's statement set built once for each engine, by engine name."""
    return {name: build(dialect) for name, dialect in DIALECTS.items()}


def dialect() -> Dialect:
    """The engine this app's database runs on."""
    return DIALECTS[db.engine.dialect.name]


# -- set-up -------------------------------------------------------------------------------------


def init_app(app: Flask) -> None:
    """Bind the database to ``app``: SQLite's per-connection pragmas (the DURABILITY setting's
    sync level among them), PostgreSQL's connection options and checkout check."""
    durable = durability.power_loss_safe(app.config)
    if not app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        durability.postgres_options(app.config, durable)
    db.init_app(app)
    app.teardown_request(release_request_connection)
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


# -- connections and transactions -----------------------------------------------------------------


def session_busy() -> bool:
    """True when this request's session has a transaction going (its statements must join it)."""
    return bool(db.session.registry.has() and db.session().in_transaction())


_HELD = "fieldstation_connection"
_SHARING = "fieldstation_sharing"


@contextmanager
def _borrowed() -> Iterator[Any]:
    """A pooled DBAPI connection: the request's own, else a fresh checkout returned afterwards.

    A request checks a connection out once (one ping at most on PostgreSQL) for
    its key lookup, its write and its reads; :func:`release_request_connection`
    returns it.
    """
    if not has_request_context() and not (has_app_context() and g.get(_SHARING)):
        connection = db.engine.raw_connection()
        try:
            yield connection
        finally:
            connection.close()
        return
    held = g.get(_HELD)
    if held is None or not held.is_valid:
        held = db.engine.raw_connection()
        setattr(g, _HELD, held)
    yield held


def release_request_connection(_exc: BaseException | None = None) -> None:
    """Return the request's connection to the pool (a ``teardown_request`` hook)."""
    held = g.pop(_HELD, None)
    if held is not None:
        held.close()


@contextmanager
def shared_connection() -> Iterator[None]:
    """Let this block's statements share one pooled connection, as a request's do.

    For work done in an app context without a request (``http.hotpath``): the
    key lookup and the write then take one checkout, not two.
    """
    setattr(g, _SHARING, True)
    try:
        yield
    finally:
        g.pop(_SHARING, None)
        release_request_connection()


@contextmanager
def driver_errors(connection: Any) -> Iterator[None]:
    """Raise the driver's errors as SQLAlchemy's, as its own execute would.

    Callers tell a database outage from bad data by SQLAlchemy's exception
    classes (the MQTT worker waits out ``OperationalError``); a connection the
    server dropped is invalidated so the pool does not hand it out again.
    """
    sa_dialect = db.engine.dialect
    dbapi = sa_dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        dropped = sa_dialect.is_disconnect(exc, getattr(connection, "dbapi_connection", None), None)
        if dropped:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            None, None, exc, dbapi.Error, connection_invalidated=dropped, dialect=sa_dialect
        ) from exc


@contextmanager
def autocommit_connection() -> Iterator[tuple[Any, Dialect]]:
    """The request's pooled DBAPI connection for statements that need no transaction, and the dialect.

    Autocommit on PostgreSQL: psycopg would otherwise wrap them in BEGIN … COMMIT
    (or ROLLBACK), two more round trips; SQLite's driver opens no transaction for a
    SELECT. Driver errors come out as SQLAlchemy's.
    """
    found = dialect()
    with _borrowed() as connection, driver_errors(connection):
        if found.round_trips:
            connection.driver_connection.autocommit = True
        try:
            yield connection, found
        finally:
            if found.round_trips and connection.is_valid:
                connection.driver_connection.autocommit = False


def _open(dbapi: Any, found: Dialect, binary: bool) -> Any:
    """A cursor; psycopg's binary cursor decodes results in a third less time than text."""
    return dbapi.cursor(binary=True) if binary and found.arrays else dbapi.cursor()


@contextmanager
def cursor(statements: dict[str, T], *, binary: bool = False) -> Iterator[tuple[Any, T]]:
    """A cursor and this engine's ``statements``, for statements that need no transaction of their own.

    Inside the session's transaction (a request that has written through the
    session) the session's connection, so they see what it wrote; else the
    request's pooled connection in autocommit (:func:`autocommit_connection`).
    ``binary`` asks PostgreSQL for results in binary (1,440 rows of the 24-hour
    query decode in 0.64 instead of 0.94 ms).
    """
    if session_busy():
        with session_cursor(statements, binary=binary) as found:
            yield found
        return
    with autocommit_connection() as (connection, found):
        opened = _open(connection, found, binary)
        try:
            yield opened, statements[found.name]
        finally:
            if connection.is_valid:
                opened.close()


@contextmanager
def session_cursor(statements: dict[str, T], *, binary: bool = False) -> Iterator[tuple[Any, T]]:
    """A cursor on the session's connection, inside its transaction (which the caller ends)."""
    connection = db.session.connection()
    found = DIALECTS[connection.dialect.name]
    with driver_errors(connection):
        opened = _open(connection.connection, found, binary)
        try:
            yield opened, statements[found.name]
        finally:
            if not connection.invalidated:
                opened.close()


@contextmanager
def transaction(statements: dict[str, T]) -> Iterator[tuple[Any, T]]:
    """A cursor on the request's pooled connection, committed when the block succeeds, else rolled back."""
    found = dialect()
    with _borrowed() as connection, driver_errors(connection):
        opened = connection.cursor()
        try:
            yield opened, statements[found.name]
            with metrics.commit_timer():
                connection.commit()
        except BaseException:
            if connection.is_valid:
                connection.rollback()
            raise
        finally:
            if connection.is_valid:
                opened.close()


@contextmanager
def own_connection() -> Iterator[Any]:
    """A pooled DBAPI connection of this block's own (not the request's), returned afterwards."""
    connection = db.engine.raw_connection()
    try:
        with driver_errors(connection):
            yield connection
    finally:
        connection.close()


_TURN_FILES: dict[str, int] = {}
_TURN_LOCK = threading.Lock()


@contextmanager
def writer_turn() -> Iterator[None]:
    """On SQLite, queue writers of all processes on an flock before the write transaction.

    SQLite's busy handler sleeps 1, 2, 5, 10… ms when another process holds the
    write lock; a blocked flock wakes the moment the lock is released.
    """
    engine = db.engine
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        yield
        return
    path = engine.url.database + "-writer"
    with _TURN_LOCK:  # an flock does not exclude threads of one process (they share the fd)
        fd = _TURN_FILES.get(path)
        if fd is None:
            fd = _TURN_FILES[path] = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
