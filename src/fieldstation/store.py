"""The only writer of readings: one batch, one transaction.

Order of statements matters. The first statement is an UPDATE of the channel
row: it takes the channel's row lock on PostgreSQL and SQLite's write lock (so
a second writer waits in busy_timeout instead of failing on a read-to-write
upgrade), bumps the entry counter and enforces the rate limit atomically.
Everything after it sees a stable channel.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, Protocol, TypeVar, cast

from flask import g, has_app_context, has_request_context
from sqlalchemy import Table, update
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, scoped_session

from fieldstation import devices, manage, rollups, writehooks
from fieldstation.errors import BadRequest, Conflict, NotFound, RateLimited
from fieldstation.extensions import db
from fieldstation.models import Channel, Entry, Field, Reading
from fieldstation.models.base import utcnow
from fieldstation.points import MAX_TS_US, UNSTORABLE, Batch, Value, now_us, plain_int
from fieldstation.points import Entry as PointEntry

#: Bound on how many server-stamped timestamps are probed for a free microsecond.
_STAMP_WINDOW_US = 10_000
#: Timestamps per existence query (sent as one array parameter).
_CHUNK = 5_000
#: From this many rows on, PostgreSQL inserts go through COPY.
_COPY_MIN = 200
_COPY = {
    "entries": "COPY entries (channel_id, ts, entry_id, status, latitude, longitude, elevation) FROM STDIN",
    "bare_entries": "COPY entries (channel_id, ts, entry_id) FROM STDIN",
}


AnySession = Session | scoped_session[Any]
ENTRIES: Table = Entry.__table__  # type: ignore[assignment]
READINGS: Table = Reading.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """Where one batch entry landed."""

    entry_id: int
    ts: int
    created: bool


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write stored, in batch order."""

    entries: list[StoredEntry]
    points: int

    @property
    def created(self) -> int:
        """How many entries were new (the rest updated existing timestamps)."""
        return sum(1 for e in self.entries if e.created)


def write(batch: Batch, *, now: int | None = None) -> WriteResult:
    """Store ``batch`` all-or-nothing and commit; nothing is acknowledged before the commit.

    Writing a (field, timestamp) that exists replaces its value: devices retry
    and backfill without creating duplicates.

    :raise BadRequest: empty batch or a field number the channel lacks.
    :raise NotFound: the channel does not exist.
    :raise RateLimited: the channel's minimum interval has not passed.
    """
    now = now_us() if now is None else now
    session = db.session
    if not session_busy():
        if _is_batch(batch):
            return _write_own_batch(batch, now)
        # Nothing pending in the session (the usual request): the request's pooled connection,
        # without the session's bookkeeping, a third of a single reading's cost.
        with _writer_turn(), _own_transaction() as (cursor, sql):
            return _write_rows(cursor, sql, batch, now)
    try:
        result = _write(session, batch, now)
        with writehooks.commit_timer():  # hook (issue 19): fieldstation_db_commit_seconds
            session.commit()
    except BaseException:
        session.rollback()
        raise
    return result


def write_many(batches: Sequence[Batch], *, now: int | None = None) -> list[WriteResult]:
    """Store several batches (one channel each) in ONE transaction, all-or-nothing.

    For workers that group many small messages (MQTT) into one commit; each batch is
    written exactly as :func:`write` would write it.
    """
    session = db.session
    stamp = now_us() if now is None else now
    try:
        results = [_write(session, batch, stamp) for batch in batches]
        with writehooks.commit_timer():  # hook (issue 19): fieldstation_db_commit_seconds
            session.commit()
    except BaseException:
        session.rollback()
        raise
    return results


def session_busy() -> bool:
    """True when this request's session has a transaction going (its writes must join it)."""
    return bool(db.session.registry.has() and db.session().in_transaction())


_TURN_FILES: dict[str, int] = {}
_TURN_LOCK = threading.Lock()


@contextmanager
def _writer_turn() -> Iterator[None]:
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


_HELD = "fieldstation_connection"


@contextmanager
def _borrowed() -> Iterator[Any]:
    """A pooled DBAPI connection: the request's own, else a fresh checkout returned afterwards.

    A request checks a connection out once (one pre-ping on PostgreSQL) for its
    key lookup and its write; :func:`release_request_connection` returns it.
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


_SHARING = "fieldstation_sharing"


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
def _own_transaction() -> Iterator[tuple[Any, _Sql]]:
    """A pooled DBAPI connection, committed when the block succeeds and rolled back otherwise."""
    engine = db.engine
    with _borrowed() as connection, _driver_errors(engine.dialect, connection):
        cursor = connection.cursor()
        try:
            yield cursor, _SQL[engine.dialect.name]
            with writehooks.commit_timer():  # hook (issue 19): fieldstation_db_commit_seconds
                connection.commit()
        except BaseException:
            if connection.is_valid:
                connection.rollback()
            raise
        finally:
            if connection.is_valid:
                cursor.close()


@contextmanager
def autocommit_connection() -> Iterator[tuple[Any, str]]:
    """The request's pooled DBAPI connection for statements that need no transaction, and the dialect.

    Autocommit on PostgreSQL: psycopg would otherwise wrap them in BEGIN … COMMIT
    (or ROLLBACK), two more round trips; SQLite's driver opens no transaction for a
    SELECT. Driver errors come out as SQLAlchemy's.
    """
    engine = db.engine
    with _borrowed() as connection, _driver_errors(engine.dialect, connection):
        postgres = engine.dialect.name == "postgresql"
        if postgres:
            connection.driver_connection.autocommit = True
        try:
            yield connection, engine.dialect.name
        finally:
            if postgres and connection.is_valid:
                connection.driver_connection.autocommit = False


@contextmanager
def _outside_transaction() -> Iterator[tuple[Any, _Sql]]:
    """A cursor for one read that needs no transaction (see :func:`autocommit_connection`)."""
    with autocommit_connection() as (connection, dialect):
        cursor = connection.cursor()
        try:
            yield cursor, _SQL[dialect]
        finally:
            if connection.is_valid:
                cursor.close()


@contextmanager
def _driver_errors(dialect: Dialect, connection: Any) -> Iterator[None]:
    """Raise the driver's errors as SQLAlchemy's, as its own execute would.

    Callers tell a database outage from bad data by SQLAlchemy's exception
    classes (the MQTT worker waits out ``OperationalError``); a connection the
    server dropped is invalidated so the pool does not hand it out again.
    """
    dbapi = dialect.loaded_dbapi
    try:
        yield
    except dbapi.Error as exc:
        dropped = dialect.is_disconnect(exc, getattr(connection, "dbapi_connection", None), None)
        if dropped:
            connection.invalidate(exc)
        raise DBAPIError.instance(
            None, None, exc, dbapi.Error, connection_invalidated=dropped, dialect=dialect
        ) from exc


# The write path runs fixed statements on the session's own DBAPI connection,
# inside the session's transaction: building and compiling SQLAlchemy
# constructs cost more than the database work for a single reading (see
# docs/performance.md). Every value is a bound parameter.


@dataclass(frozen=True, slots=True)
class _Sql:
    """The write path's statements in one dialect's parameter style."""

    dialect: str
    reserve: str
    interval: str
    fields: str
    taken: str
    existing: str
    newest: str
    give_back: str
    insert_entry: str
    insert_stamped: str
    update_meta: str
    upsert_reading: str
    #: ``upsert_reading`` for a number: no ``text`` parameter to bind as NULL.
    upsert_number: str
    #: ``insert_entry`` without metadata: no four NULL parameters.
    insert_bare_entry: str
    write_key: str
    mark_dirty: str
    channel_fields: str
    #: PostgreSQL only: ``reserve`` and ``fields`` in one round trip.
    reserve_fields: str | None


def _statements(dialect: str) -> _Sql:
    """The statements, written with ``?`` and given ``%s`` for psycopg; no value is ever formatted in."""
    pg = dialect == "postgresql"

    def bind(statement: str) -> str:
        return statement.replace("?", "%s") if pg else statement

    return _Sql(
        dialect=dialect,
        reserve=bind(
            "UPDATE channels SET last_entry_id = last_entry_id + ?, last_write_us = ? "
            "WHERE id = ? AND (min_interval_s = 0 OR last_write_us IS NULL "
            "OR last_write_us + CAST(min_interval_s AS BIGINT) * 1000000 <= ?) RETURNING last_entry_id"
        ),
        interval=bind("SELECT min_interval_s FROM channels WHERE id = ?"),
        fields=bind("SELECT number, id FROM fields WHERE channel_id = ?"),
        taken=bind("SELECT ts FROM entries WHERE channel_id = ? AND ts >= ? AND ts < ?"),
        # The timestamps travel as one parameter: an array (PostgreSQL) or a JSON array (SQLite).
        # Their range bounds the index scan: given only ``ts = ANY(…)``, PostgreSQL's planner
        # read every entry of the channel and filtered: 2.7 ms per 500 stamps on a channel of
        # 25,000 entries (0.02 ms with the range), 43 ms under the ingest bench's load, and
        # growing with the channel.
        existing=bind(
            "SELECT ts, entry_id FROM entries WHERE channel_id = ? AND ts >= ? AND ts <= ? AND ts = ANY(?)"
            if pg
            else "SELECT ts, entry_id FROM entries "
            "WHERE channel_id = ? AND ts >= ? AND ts <= ? AND ts IN (SELECT value FROM json_each(?))"
        ),
        newest=bind("SELECT max(ts) FROM entries WHERE channel_id = ?"),
        give_back=bind("UPDATE channels SET last_entry_id = ? WHERE id = ?"),
        insert_entry=bind(
            "INSERT INTO entries (channel_id, ts, entry_id, status, latitude, longitude, elevation) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)"
        ),
        insert_stamped=bind(
            "INSERT INTO entries (channel_id, ts, entry_id, status, latitude, longitude, elevation) "
            "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel_id, ts) DO NOTHING"
        ),
        update_meta=bind(
            "UPDATE entries SET status = ?, latitude = ?, longitude = ?, elevation = ? "
            "WHERE channel_id = ? AND ts = ?"
        ),
        upsert_reading=bind(
            "INSERT INTO readings (field_id, ts, value, text) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (field_id, ts) DO UPDATE SET value = excluded.value, text = excluded.text"
        ),
        upsert_number=bind(
            "INSERT INTO readings (field_id, ts, value) VALUES (?, ?, ?) "
            "ON CONFLICT (field_id, ts) DO UPDATE SET value = excluded.value, text = NULL"
        ),
        insert_bare_entry=bind("INSERT INTO entries (channel_id, ts, entry_id) VALUES (?, ?, ?)"),
        # PostgreSQL's readings and entries have no foreign keys (models.readings): the write locks
        # its channel row (the UPDATE), then its field rows (FOR KEY SHARE, after the UPDATE, as
        # the scalar subquery reads it: the order a channel's deletion takes them in). A field
        # deleted before the lock is not returned; one deleted after waits for this write's commit.
        reserve_fields=(
            "WITH r AS (UPDATE channels SET last_entry_id = last_entry_id + %s, last_write_us = %s "
            "WHERE id = %s AND (min_interval_s = 0 OR last_write_us IS NULL "
            "OR last_write_us + CAST(min_interval_s AS BIGINT) * 1000000 <= %s) "
            "RETURNING id, last_entry_id), "
            "l AS (SELECT number, id FROM fields WHERE channel_id = (SELECT id FROM r) FOR KEY SHARE) "
            "SELECT r.last_entry_id, l.number, l.id FROM r LEFT JOIN l ON true"
            if pg
            else None
        ),
        channel_fields=bind(
            "SELECT c.name, f.name, f.number FROM channels c LEFT JOIN fields f ON f.channel_id = c.id "
            "WHERE c.id = ?"
        ),
        mark_dirty=bind(
            "INSERT INTO rollup_dirty (field_id, ts, gen) VALUES (?, ?, 1) "
            "ON CONFLICT (field_id, ts) DO UPDATE SET gen = rollup_dirty.gen + 1"
        ),
        # A key bound to a device writes as that device, so the allow-list check uses it.
        write_key=bind(
            "SELECT k.id, k.kind, k.channel_id, k.device_id, "
            "EXISTS (SELECT 1 FROM devices d WHERE d.channel_id = k.channel_id), "
            "EXISTS (SELECT 1 FROM devices d WHERE d.channel_id = k.channel_id "
            "AND d.device_id = COALESCE(k.device_id, CAST(? AS VARCHAR(64)))) "
            "FROM api_keys k WHERE k.key_hash = ? AND k.revoked_at IS NULL"
        ),
    )


_SQL = {name: _statements(name) for name in ("sqlite", "postgresql")}


KeyRow = tuple[int, str, int | None, str | None, bool, bool]


def lookup_write_key(key_hash: str, device: str | None) -> KeyRow | None:
    """(id, kind, channel id, bound device, channel restricts devices, device allowed) of a live key.

    Every write runs this first, so it is one fixed statement (see auth.authorize_write).
    """
    session = db.session
    if session_busy():  # see what the session's pending transaction sees
        connection = session.connection()
        with _driver_errors(connection.dialect, connection):
            cursor = connection.connection.cursor()
            cursor.execute(_SQL[connection.dialect.name].write_key, (device, key_hash))
            row = cursor.fetchone()
            cursor.close()
    else:
        with _outside_transaction() as (cursor, sql):
            cursor.execute(sql.write_key, (device, key_hash))
            row = cursor.fetchone()
    return _key_row(row)


def _key_row(row: Any) -> KeyRow | None:
    """The ``write_key`` statement's row with Python types (SQLite gives 0/1 for booleans)."""
    if row is None:
        return None
    key_id, kind, channel_id, bound, restricted, allowed = row
    return int(key_id), str(kind), channel_id, bound, bool(restricted), bool(allowed)


class Grant(Protocol):
    """What a write key grants: the channel it writes to, and as which device."""

    @property
    def channel_id(self) -> int: ...

    @property
    def device(self) -> str | None: ...


GrantT = TypeVar("GrantT", bound=Grant)


def write_keyed(
    key_hash: str, device: str | None, entry: PointEntry, authorize: Callable[[KeyRow | None], GrantT]
) -> tuple[GrantT, WriteResult]:
    """Look up a write key and store one server-stamped entry with it, on one pooled connection.

    The single-reading path on SQLite (PostgreSQL's is :func:`write_single`):
    one checkout for both, no session, and the lookup before the writer's turn,
    so only the write waits for other writers. Layered through the session and
    the request's shared connection, the same work cost 12–25% more
    (docs/performance.md). ``authorize`` applies the key's rules to its row
    (:func:`lookup_write_key`'s shape): it returns the grant or raises, and then
    nothing is written.
    """
    engine = db.engine
    sql = _SQL[engine.dialect.name]
    now = now_us()
    connection = engine.raw_connection()
    try:
        with _driver_errors(engine.dialect, connection):
            cursor = connection.cursor()
            cursor.execute(sql.write_key, (device, key_hash))
            grant = authorize(_key_row(cursor.fetchone()))
            batch = Batch(grant.channel_id, [entry], device=grant.device)
            with _writer_turn():
                try:
                    result = _write_rows(cursor, sql, batch, now)
                    with writehooks.commit_timer():  # hook (issue 19): fieldstation_db_commit_seconds
                        connection.commit()
                except BaseException:
                    if connection.is_valid:
                        connection.rollback()
                    raise
            return grant, result
    finally:
        connection.close()


#: PostgreSQL: key lookup, channel reserve + rate limit, entry, readings and rollup marks of one
#: server-stamped entry in ONE statement. Run in autocommit, it is its own transaction: all of it
#: commits before the answer arrives, or none of it. Every data-modifying part hangs off the
#: channel UPDATE, which runs only for a write key that passes the rules of
#: ``auth.authorize_write`` (the same conjunction; Python applies them again to the returned row
#: to choose 401/403) and only when every field number exists; otherwise nothing is written and
#: the caller takes the ordinary path, which names the reason. The entry is inserted at ``now``
#: without ON CONFLICT: a taken microsecond aborts the whole statement, and the ordinary path
#: then finds the next free one. ``readings`` has no foreign key on PostgreSQL (models.readings);
#: ``rollup_dirty`` has, and its check, at the end of the statement, share-locks each field row
#: (after the channel row, as ``reserve_fields`` does): a field deleted meanwhile aborts the
#: statement the same way, and one deleted later waits for it. ``{values}`` is one of the two
#: constants below.
_WRITE_ONE_TEMPLATE = """
WITH p AS (SELECT CAST(%(device)s AS VARCHAR(64)) AS device, CAST(%(now)s AS BIGINT) AS now),
k AS (
  SELECT k.id, k.kind, k.channel_id, k.device_id,
         EXISTS (SELECT 1 FROM devices d WHERE d.channel_id = k.channel_id) AS restricted,
         EXISTS (SELECT 1 FROM devices d WHERE d.channel_id = k.channel_id
                 AND d.device_id = COALESCE(k.device_id, p.device)) AS allowed
  FROM api_keys k, p WHERE k.key_hash = %(key_hash)s AND k.revoked_at IS NULL
),
v AS ({values}),
f AS (
  SELECT f.id, v.value, v.text
  FROM k JOIN fields f ON f.channel_id = k.channel_id JOIN v ON f.number = v.number
),
r AS (
  UPDATE channels c SET last_entry_id = c.last_entry_id + 1, last_write_us = p.now
  FROM k, p
  WHERE c.id = k.channel_id AND k.kind = %(write_kind)s
    AND (k.device_id IS NULL OR p.device IS NULL OR k.device_id = p.device)
    AND (NOT k.restricted OR k.allowed)
    AND (c.min_interval_s = 0 OR c.last_write_us IS NULL
         OR c.last_write_us + CAST(c.min_interval_s AS BIGINT) * 1000000 <= p.now)
    AND (SELECT count(*) FROM f) = %(count)s
  RETURNING c.id, c.last_entry_id
),
e AS (
  INSERT INTO entries (channel_id, ts, entry_id, status, latitude, longitude, elevation)
  SELECT r.id, p.now, r.last_entry_id, %(status)s, %(latitude)s, %(longitude)s, %(elevation)s FROM r, p
  RETURNING entry_id, ts
),
w AS (
  INSERT INTO readings (field_id, ts, value, text) SELECT f.id, e.ts, f.value, f.text FROM f, e
  ON CONFLICT (field_id, ts) DO UPDATE SET value = excluded.value, text = excluded.text
),
m AS (
  INSERT INTO rollup_dirty (field_id, ts, gen) SELECT f.id, e.ts / %(hour)s * %(hour)s, 1 FROM f, e
  ON CONFLICT (field_id, ts) DO UPDATE SET gen = rollup_dirty.gen + 1
),
{seen}
SELECT k.id, k.kind, k.channel_id, k.device_id, k.restricted, k.allowed, (SELECT entry_id FROM e) FROM k
"""
# Hook (issue 19): the device seen, counted by the same statement (devices.PG_SINGLE_CTE).
_WRITE_ONE_TEMPLATE = _WRITE_ONE_TEMPLATE.replace("{seen}", devices.PG_SINGLE_CTE)
#: The statement for one value (the usual device) binds scalars, for any other count arrays:
#: psycopg adapts the three arrays in about 20 µs, scalars in a third of that.
_WRITE_ONE = {
    True: _WRITE_ONE_TEMPLATE.replace(
        "{values}",
        "SELECT CAST(%(number)s AS INTEGER) AS number, CAST(%(value)s AS DOUBLE PRECISION) AS value, "
        "CAST(%(text)s AS VARCHAR(255)) AS text",
    ),
    False: _WRITE_ONE_TEMPLATE.replace(
        "{values}",
        "SELECT * FROM unnest(CAST(%(numbers)s AS INTEGER[]), CAST(%(values)s AS DOUBLE PRECISION[]), "
        "CAST(%(texts)s AS VARCHAR(255)[])) AS v (number, value, text)",
    ),
}


def fuses_single_writes() -> bool:
    """True when :func:`write_single` can store a reading with its key check in one round trip.

    PostgreSQL only, and only when the request's session has nothing pending
    (a write that must join the session's transaction takes the ordinary path).
    SQLite keeps its own single-reading path: there a statement costs no round trip.
    """
    return db.engine.dialect.name == "postgresql" and not session_busy()


def writes_keyed() -> bool:
    """True when :func:`write_keyed` stores a single reading: SQLite, with nothing pending in the session."""
    return db.engine.dialect.name == "sqlite" and not session_busy()


#: :func:`write_single` could not decide; take the ordinary path (key lookup, then :func:`write`).
RETRY_ORDINARY = "retry"


def write_single(
    key_hash: str, device: str | None, entry: PointEntry, write_kind: str, *, now: int | None = None
) -> tuple[KeyRow | None, WriteResult | None] | str:
    """Look up a write key and store one server-stamped entry with it, in one statement (PostgreSQL).

    Returns the key row (as :func:`lookup_write_key` does) and what was stored,
    or ``None`` for the latter when nothing was: the key fails the rules, the
    channel refuses the write (rate limit, unknown field) or the row cannot say.
    The caller applies the key rules to the row and, for a good key, takes the
    ordinary path, which raises the exact error. :data:`RETRY_ORDINARY` when the
    statement failed on a taken microsecond: nothing was written.
    """
    if entry.ts is not None:
        raise ValueError("write_single stores server-stamped entries only")
    now = now_us() if now is None else now
    values = entry.values
    params: dict[str, object] = {
        "device": device,
        "now": now,
        "key_hash": key_hash,
        "write_kind": write_kind,
        "count": len(values),
        "status": entry.status,
        "latitude": entry.latitude,
        "longitude": entry.longitude,
        "elevation": entry.elevation,
        "hour": rollups.HOUR,
    }
    one = len(values) == 1
    if one:
        [(params["number"], value)] = values.items()
        params["value"], params["text"] = (None, value) if isinstance(value, str) else (value, None)
    else:
        params["numbers"] = list(values)
        params["values"] = [None if isinstance(v, str) else v for v in values.values()]
        params["texts"] = [v if isinstance(v, str) else None for v in values.values()]
    engine = db.engine
    with _outside_transaction() as (cursor, _sql):
        try:
            cursor.execute(_WRITE_ONE[one], params)
        except engine.dialect.loaded_dbapi.IntegrityError:
            return RETRY_ORDINARY  # autocommit: the failed statement left nothing behind
        row = cursor.fetchone()
    if row is None:
        return None, None
    key_id, kind, channel_id, bound, restricted, allowed, entry_id = row
    key = (int(key_id), str(kind), channel_id, bound, bool(restricted), bool(allowed))
    if entry_id is None:
        return key, None
    writehooks.written_single(len(values))  # hook (issue 19); the device: devices.PG_SINGLE_CTE
    return key, WriteResult([StoredEntry(int(entry_id), now, True)], len(values))


def _write(session: AnySession, batch: Batch, now: int) -> WriteResult:
    connection = session.connection()
    with _driver_errors(connection.dialect, connection):
        cursor = connection.connection.cursor()
        try:
            return _write_rows(cursor, _SQL[connection.dialect.name], batch, now)
        finally:
            if not connection.invalidated:
                cursor.close()


def _write_rows(
    cur: Any, sql: _Sql, batch: Batch, now: int, prepared: _Prepared | None = None
) -> WriteResult:
    """The whole write, on one cursor inside the caller's transaction."""
    if not batch.entries:
        raise BadRequest("nothing to write", code="empty")
    channel_id, entries = batch.channel_id, batch.entries
    last_entry_id, field_ids = _lock_channel(cur, sql, channel_id, len(entries), now, batch.rate_limited)
    if _is_batch(batch):
        result = _write_batch(cur, sql, batch, now, last_entry_id, field_ids, prepared)
        return writehooks.written(cur, sql.dialect, batch, now, result.points, result)  # hook (issue 19)
    for entry in entries:
        for number in entry.values:
            if number not in field_ids:
                raise BadRequest(f"channel has no field {number}", code="unknown_field")

    # The hot path of single-reading devices: one new, server-stamped entry.
    stored = [_insert_stamped(cur, sql, channel_id, entries[0], last_entry_id, now)]
    timestamps = [stored[0].ts]

    readings = [
        (field_ids[number], ts, None, value)
        if isinstance(value, str)
        else (field_ids[number], ts, value, None)
        for entry, ts in zip(entries, timestamps, strict=True)
        for number, value in entry.values.items()
    ]
    if readings:
        _upsert_readings(cur, sql, readings)
        _mark_rollups_dirty(cur, sql, readings)
    return writehooks.written(cur, sql.dialect, batch, now, len(readings), WriteResult(stored, len(readings)))


# -- batches -----------------------------------------------------------------------------------
#
# A 5,000-point batch costs as much Python as SQLite, and SQLite takes one writer
# at a time: whatever runs while the write lock is held is paid once per batch by
# every writer in the queue. So a batch's readings and rollup marks are built
# before the lock, against a snapshot of the channel's field ids that is checked
# once the lock is held; under the lock run the statements and little else.


def _is_batch(batch: Batch) -> bool:
    """Anything but one server-stamped entry with its values (the single-reading path)."""
    return len(batch.entries) != 1 or batch.entries[0].ts is not None or batch.series is not None


#: Batches of fewer points are built under the lock: for them, reading the field ids first
#: costs more (a statement; on PostgreSQL a round trip) than building the rows under the lock.
_PREPARE_MIN_POINTS = 100


def _write_own_batch(batch: Batch, now: int) -> WriteResult:
    """A batch on pooled connections of its own: prepared first, then written in the writer's turn."""
    prepared = None
    if batch.point_count >= _PREPARE_MIN_POINTS:
        with _outside_transaction() as (cursor, sql):
            cursor.execute(sql.fields, (batch.channel_id,))
            field_ids = dict(cursor.fetchall())
        prepared = _prepare(batch, field_ids)
    with _writer_turn(), _own_transaction() as (cursor, sql):
        return _write_rows(cursor, sql, batch, now, prepared)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A batch's readings and rollup marks, for the field ids they were built with."""

    field_ids: dict[int, int]
    #: (field id, ts, value) in batch order; None when entries wait for a server stamp.
    readings: list[tuple[int, int, Value]] | None
    #: Every value is a number (no text column to fill).
    numeric: bool
    #: (field id, hour) rollup slots the readings touch.
    marks: list[tuple[int, int]]


def _prepare(batch: Batch, field_ids: dict[int, int]) -> _Prepared:
    """Build what can be built without the lock; unknown fields are left to the locked check."""
    entries = batch.entries
    if any(e.ts is None for e in entries) or not _numbers(batch) <= field_ids.keys():
        return _Prepared(field_ids, None, True, [])
    return _readings(batch, [e.ts for e in entries if e.ts is not None], field_ids)


def _numbers(batch: Batch) -> set[int]:
    """The field numbers a batch writes."""
    if batch.series is not None:
        return set(batch.series)
    return set().union(*(entry.values for entry in batch.entries))


def _readings(batch: Batch, timestamps: Sequence[int], field_ids: dict[int, int]) -> _Prepared:
    """Readings rows and rollup marks of a batch whose entries have these timestamps.

    Rows are made by ``zip``/``map`` in C, per entry or per series; Python
    loops over entries or series only, never over single values.
    """
    readings: list[tuple[int, int, Value]] = []
    kinds: set[type] = set()
    marks: set[tuple[int, int]] = set()
    hour = rollups.HOUR
    if batch.series is None:
        field_id = field_ids.__getitem__
        hours: dict[int, set[int]] = {}  # hour slot -> field numbers written in it
        for entry, ts in zip(batch.entries, timestamps, strict=True):
            values = entry.values
            readings.extend(zip(map(field_id, values), repeat(ts), values.values()))
            kinds.update(map(type, values.values()))
            slot = hours.get(ts // hour * hour)
            if slot is None:
                hours[ts // hour * hour] = set(values)
            else:
                slot.update(values)
        marks.update((field_ids[number], slot) for slot, numbers in hours.items() for number in numbers)
        # Field by field, as series come: SQLite inserts them into the (field, ts) key in
        # fewer page visits than time-major rows (JSON batch under the lock 10.3 -> 9.6 ms).
        # The sort is stable, so a later value for the same key still comes later.
        readings.sort(key=itemgetter(0))
    else:
        hours_of = {ts: ts // hour * hour for ts in timestamps}
        # Series timestamps are their entries': at most one is None, stamped by now.
        stamp = next((ts for e, ts in zip(batch.entries, timestamps, strict=True) if e.ts is None), None)
        for number, series in batch.series.items():
            fid = field_ids[number]
            times: list[int]
            if None in series:
                if stamp is None:
                    raise ValueError("a series timestamp without an entry (use Batch.of_series)")
                times = [stamp if ts is None else ts for ts in series]
            else:
                times = cast("list[int]", list(series))
            readings.extend(zip(repeat(fid), times, series.values()))
            kinds.update(map(type, series.values()))
            marks.update(zip(repeat(fid), set(map(hours_of.__getitem__, times))))
    return _Prepared(field_ids, readings, kinds <= {float, int}, sorted(marks))


def _write_batch(
    cur: Any,
    sql: _Sql,
    batch: Batch,
    now: int,
    last_entry_id: int,
    field_ids: dict[int, int],
    prepared: _Prepared | None,
) -> WriteResult:
    """Every write but a single server-stamped entry, under the lock: entries, readings, rollup marks.

    ``prepared`` is used when its field ids are still the channel's (they are
    read again under the lock); otherwise, or without it, it is built here.
    Numeric readings skip the NULL ``text`` parameter (sqlite3 binds a None
    about 15 times slower than a number).
    """
    entries = batch.entries
    if prepared is None or prepared.field_ids != field_ids:
        prepared = _prepare(batch, field_ids)
    if prepared.readings is None:
        unknown = _numbers(batch) - field_ids.keys()
        if unknown:  # name the first one in batch order
            written = batch.series or (number for entry in entries for number in entry.values)
            number = next(n for n in written if n in unknown)
            raise BadRequest(f"channel has no field {number}", code="unknown_field")
    timestamps = _assign_timestamps(cur, sql, batch, now)
    stored = _insert_entries(cur, sql, batch, timestamps, last_entry_id)
    if prepared.readings is None:  # server-stamped entries: their stamps are known now
        prepared = _readings(batch, timestamps, field_ids)
    readings = prepared.readings or []
    if readings:
        if _copy_as_new(sql, readings, stored, timestamps):
            _copy_new_readings(cur, prepared.numeric, readings)
        elif prepared.numeric:
            _upsert_numbers(cur, sql, readings)
        else:  # texts go to their own column, in batch order (a later value for a key wins)
            _upsert_readings(
                cur,
                sql,
                [(f, ts, None, v) if isinstance(v, str) else (f, ts, v, None) for f, ts, v in readings],
            )
        if len(prepared.marks) == 1:
            cur.execute(sql.mark_dirty, prepared.marks[0])
        else:
            cur.executemany(sql.mark_dirty, prepared.marks)
    return WriteResult(stored, len(readings))


def _mark_rollups_dirty(cur: Any, sql: _Sql, readings: Sequence[tuple[object, ...]]) -> None:
    """Mark the (field, hour) rollup slots the write touched stale, in the write's transaction.

    The fixed-statement twin of :func:`fieldstation.rollups.mark_dirty` (same upsert,
    generation + 1), run on the write's own cursor.
    """
    hours = sorted({(int(r[0]), int(r[1]) // rollups.HOUR * rollups.HOUR) for r in readings})  # type: ignore[call-overload]
    if len(hours) == 1:
        cur.execute(sql.mark_dirty, hours[0])
    else:
        cur.executemany(sql.mark_dirty, hours)


def _lock_channel(
    cur: Any, sql: _Sql, channel_id: int, count: int, now: int, rate_limited: bool = True
) -> tuple[int, dict[int, int]]:
    """Reserve ``count`` entry ids and enforce the rate limit; returns the new counter and field ids.

    On PostgreSQL one statement does both (an UPDATE … RETURNING in a CTE joined
    to the fields), saving a round trip on every write. Without ``rate_limited``
    the statement compares the last write with the end of time, so it always passes.
    """
    due = now if rate_limited else MAX_TS_US
    if sql.reserve_fields:
        cur.execute(sql.reserve_fields, (count, now, channel_id, due))
        rows = cur.fetchall()
        if rows:
            return int(rows[0][0]), {number: fid for _, number, fid in rows if number is not None}
    else:
        cur.execute(sql.reserve, (count, now, channel_id, due))
        row = cur.fetchone()
        if row is not None:
            cur.execute(sql.fields, (channel_id,))
            return int(row[0]), dict(cur.fetchall())
    cur.execute(sql.interval, (channel_id,))
    found = cur.fetchone()
    if found is None:
        raise NotFound("channel not found")
    raise RateLimited(f"this channel accepts one update every {found[0]} s")


def _insert_stamped(
    cur: Any, sql: _Sql, channel_id: int, entry: PointEntry, entry_id: int, now: int
) -> StoredEntry:
    """Insert a server-stamped entry at ``now`` or the next free microsecond (never overwriting)."""
    meta = (entry.status, entry.latitude, entry.longitude, entry.elevation)
    for ts in range(now, now + _STAMP_WINDOW_US):
        cur.execute(sql.insert_stamped, (channel_id, ts, entry_id, *meta))
        if cur.rowcount == 1:
            return StoredEntry(entry_id, ts, True)
    raise Conflict("too many entries stamped in the same instant", code="busy")


def _assign_timestamps(cur: Any, sql: _Sql, batch: Batch, now: int) -> list[int]:
    """Explicit timestamps as given; server-stamped entries get ``now`` or the next free µs.

    A server-stamped entry must never overwrite another entry, so stamps skip
    microseconds already taken in the channel or in this batch.
    """
    explicit = {e.ts for e in batch.entries if e.ts is not None}
    stamped = sum(1 for e in batch.entries if e.ts is None)
    if not stamped:
        return [e.ts for e in batch.entries if e.ts is not None]
    cur.execute(sql.taken, (batch.channel_id, now, now + _STAMP_WINDOW_US))
    taken = explicit | {row[0] for row in cur.fetchall()}
    free = (ts for ts in range(now, now + _STAMP_WINDOW_US) if ts not in taken)
    result = []
    for entry in batch.entries:
        if entry.ts is not None:
            result.append(entry.ts)
            continue
        stamp = next(free, None)
        if stamp is None:
            raise Conflict("too many entries stamped in the same instant", code="busy")
        result.append(stamp)
    return result


def _insert_entries(
    cur: Any, sql: _Sql, batch: Batch, timestamps: list[int], last_entry_id: int
) -> list[StoredEntry]:
    """Insert the entries that are new, refresh metadata of existing ones, number them without gaps."""
    channel_id, entries = batch.channel_id, batch.entries
    distinct = set(timestamps)
    existing = _existing_entries(cur, sql, channel_id, distinct)
    next_id = last_entry_id - len(entries) + 1
    with_meta = any(
        e.status is not None or e.latitude is not None or e.longitude is not None or e.elevation is not None
        for e in entries
    )
    if not existing and not with_meta and len(distinct) == len(entries):
        # The usual batch (all new, a timestamp each, no metadata): rows and answers made in C.
        ids = range(next_id, last_entry_id + 1)
        _insert_many(
            cur, sql, "bare_entries", sql.insert_bare_entry, list(zip(repeat(channel_id), timestamps, ids))
        )
        return list(map(StoredEntry, ids, timestamps, repeat(True)))
    stored: list[StoredEntry] = []
    assigned: dict[int, int] = dict(existing)
    new_rows: list[tuple[object, ...]] = []
    meta_updates: list[tuple[object, ...]] = []
    for entry, ts in zip(entries, timestamps, strict=True):
        found = assigned.get(ts)
        if found is not None:
            meta = (entry.status, entry.latitude, entry.longitude, entry.elevation)
            if with_meta and any(v is not None for v in meta):
                meta_updates.append((*meta, channel_id, ts))
            stored.append(StoredEntry(found, ts, ts not in existing))
            continue
        assigned[ts] = next_id
        if with_meta:
            new_rows.append(
                (channel_id, ts, next_id, entry.status, entry.latitude, entry.longitude, entry.elevation)
            )
        else:
            new_rows.append((channel_id, ts, next_id))
        stored.append(StoredEntry(next_id, ts, True))
        next_id += 1
    if next_id - 1 != last_entry_id:
        # Some entries existed already: give back the ids reserved for them.
        cur.execute(sql.give_back, (next_id - 1, channel_id))
    if new_rows:
        if with_meta:
            _insert_many(cur, sql, "entries", sql.insert_entry, new_rows)
        else:
            _insert_many(cur, sql, "bare_entries", sql.insert_bare_entry, new_rows)
    if meta_updates:
        cur.executemany(sql.update_meta, meta_updates)
    return stored


def _existing_entries(cur: Any, sql: _Sql, channel_id: int, timestamps: Iterable[int]) -> dict[int, int]:
    """Map of timestamp -> entry id for the given timestamps that already exist.

    Data usually arrives newer than anything stored: one look at the channel's
    newest entry then answers for the whole batch.
    """
    ordered = sorted(timestamps)
    found: dict[int, int] = {}
    if not ordered:
        return found
    cur.execute(sql.newest, (channel_id,))
    newest = cur.fetchone()
    if newest is None or newest[0] is None or newest[0] < ordered[0]:
        return found
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        stamps = chunk if sql.dialect == "postgresql" else json.dumps(chunk)
        cur.execute(sql.existing, (channel_id, chunk[0], chunk[-1], stamps))
        found.update(cur.fetchall())
    return found


def _insert_many(cur: Any, sql: _Sql, table: str, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
    """INSERT rows known to be new; PostgreSQL takes large batches through COPY (4.5x executemany)."""
    if sql.dialect == "postgresql" and len(rows) >= _COPY_MIN:
        with cur.copy(_COPY[table]) as copy:
            for row in rows:
                copy.write_row(row)
        return
    _many(cur, sql, statement, rows)


def _upsert_numbers(cur: Any, sql: _Sql, rows: Sequence[tuple[int, int, Value]]) -> None:
    """Upsert (field id, ts, number) rows; their ``text`` becomes NULL. PostgreSQL: COPY from 200 rows."""
    if sql.dialect == "postgresql" and len(rows) >= _COPY_MIN:
        _merge_copied(cur, "(field_id, ts, value)", rows)
    else:
        _many(cur, sql, sql.upsert_number, rows)


#: SQLite's smallest limit on the parameters of one statement (999 before SQLite 3.32).
_SQLITE_PARAMETERS = 999


def _many(cur: Any, sql: _Sql, statement: str, rows: Sequence[Sequence[object]]) -> None:
    """``executemany`` of an ``INSERT … VALUES (?, …)``; on SQLite as statements of many rows each.

    SQLite inserts the rows of one multi-row VALUES about 40% faster than
    executemany, which runs the statement once per row (5,000 readings: 7.5
    -> 4.5 ms). Each statement takes as many rows as fit in 999 parameters,
    in order, so a later row for a key still wins; the rows left over go
    through executemany. Only placeholders are repeated: values stay bound.
    """
    if sql.dialect != "sqlite" or len(rows) < 2:
        cur.executemany(statement, rows)
        return
    per = _SQLITE_PARAMETERS // len(rows[0])
    full = len(rows) - len(rows) % per
    if full:
        statement_of_many = _rows_statement(statement, per)
        for start in range(0, full, per):
            cur.execute(statement_of_many, list(chain.from_iterable(rows[start : start + per])))
    if full < len(rows):
        cur.executemany(statement, rows[full:])


@lru_cache(maxsize=16)
def _rows_statement(statement: str, count: int) -> str:
    """A fixed ``INSERT … VALUES (?, …) …`` with its row of placeholders repeated ``count`` times."""
    head, values, rest = statement.partition("VALUES ")
    row, close, tail = rest.partition(")")
    return head + values + ", ".join([row + close] * count) + tail


def _upsert_readings(cur: Any, sql: _Sql, rows: Sequence[tuple[object, ...]]) -> None:
    """INSERT … ON CONFLICT (field_id, ts) DO UPDATE; large PostgreSQL batches go through COPY.

    COPY cannot upsert, so it fills a temporary table that one INSERT … SELECT
    … ON CONFLICT then merges (a later row for the same key wins, as in a loop).
    """
    if sql.dialect != "postgresql" or len(rows) < _COPY_MIN:
        if len(rows) == 1:
            cur.execute(sql.upsert_reading, rows[0])
        else:
            _many(cur, sql, sql.upsert_reading, rows)
        return
    _merge_copied(cur, "(field_id, ts, value, text)", rows)


def _copy_as_new(
    sql: _Sql, readings: Sequence[object], stored: Sequence[StoredEntry], timestamps: Sequence[int]
) -> bool:
    """PostgreSQL: the batch's readings can be COPYed straight into ``readings``.

    True when the batch is large, every entry was new (none existed at its
    timestamp, checked under the channel lock) and no two entries share a
    timestamp, so no reading exists at any of its (field, ts) keys and none
    repeats in the batch: a reading is written only with its entry, and
    retention deletes readings before their entries. A retried batch finds its
    entries and takes the merging upsert, so it never duplicates.
    """
    return (
        sql.dialect == "postgresql"
        and len(readings) >= _COPY_MIN
        and all(entry.created for entry in stored)
        and len(set(timestamps)) == len(timestamps)
    )


#: Binary COPY of new readings (no text column to fill for numbers, or with it).
_COPY_NEW = {
    True: ("COPY readings (field_id, ts, value) FROM STDIN (FORMAT BINARY)", ["int4", "int8", "float8"]),
    False: (
        "COPY readings (field_id, ts, value, text) FROM STDIN (FORMAT BINARY)",
        ["int4", "int8", "float8", "text"],
    ),
}


def _copy_new_readings(cur: Any, numeric: bool, readings: Sequence[tuple[int, int, Value]]) -> None:
    """COPY readings known to be new straight into ``readings``, in binary; else merge them.

    About half the time of COPY into a temporary table plus the merging upsert.
    A savepoint guards the claim: should a key exist after all, the COPY is
    undone and the rows take the merging upsert, as any other batch.
    """
    from psycopg.errors import UniqueViolation  # PostgreSQL only; psycopg is the driver we ship

    statement, types = _COPY_NEW[numeric]
    rows: Iterable[tuple[object, ...]] = readings
    if not numeric:
        rows = [(f, ts, None, v) if isinstance(v, str) else (f, ts, v, None) for f, ts, v in readings]
    cur.execute("SAVEPOINT fieldstation_new_readings")
    try:
        with cur.copy(statement) as copy:
            copy.set_types(types)
            for row in rows:
                copy.write_row(row)
    except UniqueViolation:
        cur.execute("ROLLBACK TO SAVEPOINT fieldstation_new_readings")
        _merge_copied(cur, "(field_id, ts, value)" if numeric else "(field_id, ts, value, text)", list(rows))
    else:
        cur.execute("RELEASE SAVEPOINT fieldstation_new_readings")


def _merge_copied(cur: Any, columns: str, rows: Sequence[tuple[object, ...]]) -> None:
    """PostgreSQL: COPY rows into a temporary table, then merge them into readings with one upsert.

    COPY cannot upsert; the merge keeps the last row of each key, as a loop of upserts would.
    ``columns`` is one of two constants, never input.
    """
    cur.execute(
        "CREATE TEMPORARY TABLE IF NOT EXISTS incoming_readings "
        "(seq SERIAL, field_id INTEGER, ts BIGINT, value DOUBLE PRECISION, text VARCHAR(255)) "
        "ON COMMIT DELETE ROWS"
    )
    with cur.copy(f"COPY incoming_readings {columns} FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(
        "INSERT INTO readings (field_id, ts, value, text) "
        "SELECT DISTINCT ON (field_id, ts) field_id, ts, value, text FROM incoming_readings "
        "ORDER BY field_id, ts, seq DESC "
        "ON CONFLICT (field_id, ts) DO UPDATE SET value = excluded.value, text = excluded.text"
    )


# -- field lookup and creation for adapters that name fields ---------------------------------


@dataclass(frozen=True, slots=True)
class ChannelFields:
    """A channel's name and its fields' numbers by name."""

    name: str
    numbers: dict[str, int]

    def named(self, channel_id: int, ref: str) -> bool:
        """True when ``ref`` names this channel, by id or by name (InfluxDB's ``db`` parameter)."""
        return ref == self.name or plain_int(ref) == channel_id


def channel_fields(channel_id: int) -> ChannelFields | None:
    """The channel's name and field numbers (None: no such channel), in one fixed statement.

    Batch adapters look these up on every request; without the ORM the
    request's session stays idle, so :func:`write` takes its own connection
    (and the writers' queue) instead of the session's.
    """
    session = db.session
    if session_busy():  # see what the session's pending transaction sees
        connection = session.connection()
        with _driver_errors(connection.dialect, connection):
            cursor = connection.connection.cursor()
            cursor.execute(_SQL[connection.dialect.name].channel_fields, (channel_id,))
            rows = cursor.fetchall()
            cursor.close()
    else:
        with _outside_transaction() as (cursor, sql):
            cursor.execute(sql.channel_fields, (channel_id,))
            rows = cursor.fetchall()
    if not rows:
        return None
    return ChannelFields(rows[0][0], {name: number for _, name, number in rows if name is not None})


def ensure_fields(channel_id: int, names: Iterable[str], *, limit: int) -> dict[str, int]:
    """Numbers of the named fields, creating the missing ones with the next free numbers.

    New fields are flushed, not committed: the :func:`write` that follows in
    the same request commits them with the data, or rolls both back. The
    channel row is locked before fields are added, so two writers creating
    the same field serialise instead of colliding on the unique name.

    :raise BadRequest: a name over 255 characters, or more than ``limit`` fields.
    """
    wanted = set(names)
    known = manage.field_numbers(channel_id)
    missing = sorted(wanted - known.keys())
    if not missing:
        return {name: known[name] for name in wanted}
    session = db.session
    try:
        for name in missing:
            if not name.strip() or len(name) > 255 or UNSTORABLE.search(name):
                raise BadRequest(
                    f"field names are 1-255 characters, without control characters: {name[:60]!r}…",
                    code="bad_field_name",
                )
        locked = session.execute(
            update(Channel)
            .where(Channel.id == channel_id)
            .values(last_entry_id=Channel.last_entry_id)
            .returning(Channel.id)
        ).scalar()
        if locked is None:
            raise NotFound("channel not found")
        known = manage.field_numbers(channel_id)  # another writer may have added some meanwhile
        missing = sorted(wanted - known.keys())
        if len(known) + len(missing) > limit:
            raise BadRequest(
                f"this write would give the channel {len(known) + len(missing)} fields; "
                f"the limit is {limit} (MAX_FIELDS_PER_CHANNEL)",
                code="too_many_fields",
            )
        number = max(known.values(), default=0)
        rows = []
        for name in missing:
            number += 1
            rows.append({"channel_id": channel_id, "number": number, "name": name, "created_at": utcnow()})
            known[name] = number
        if rows:  # none when another writer made them all while this one waited for the lock
            session.execute(Field.__table__.insert(), rows)  # type: ignore[attr-defined]
    except BaseException:
        session.rollback()
        raise
    return {name: known[name] for name in wanted}
