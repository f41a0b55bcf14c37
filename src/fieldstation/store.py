"""The batch engine, the only writer of entries and readings: one batch, one transaction.

:func:`write` and :func:`write_many` are the API; :func:`write_rows` is the
engine itself, on a cursor inside the caller's transaction, for
:mod:`fieldstation.ingest`'s single readings. Where a write runs: on a pooled
connection of its own (the usual request, nothing pending in the session), or
inside the session's transaction when the request has written through it (new
fields from line protocol, the MQTT worker's groups); :mod:`fieldstation.db`
picks the route.

Order of statements matters. The first statement is an UPDATE of the channel
row: it takes the channel's row lock on PostgreSQL and SQLite's write lock (so
a second writer waits in busy_timeout instead of failing on a read-to-write
upgrade), bumps the entry counter and enforces the rate limit atomically.
Everything after it sees a stable channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, repeat
from operator import itemgetter
from typing import Any, cast

from fieldstation import db as database
from fieldstation import derive, metrics, writehooks
from fieldstation.db import Dialect
from fieldstation.errors import BadRequest, Conflict, NotFound, RateLimited
from fieldstation.extensions import db
from fieldstation.points import Batch, Entry, Value
from fieldstation.timeunits import HOUR, MAX_TS_US, US, now_us, slot_start

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
    if not database.session_busy():
        if _is_batch(batch):
            return _write_own_batch(batch, now)
        # Nothing pending in the session (the usual request): the request's pooled connection,
        # without the session's bookkeeping, a third of a single reading's cost.
        with database.writer_turn(), database.transaction(STATEMENTS) as (cursor, sql):
            return write_rows(cursor, sql, batch, now)
    try:
        with database.session_cursor(STATEMENTS) as (cursor, sql):
            result = write_rows(cursor, sql, batch, now)
        with metrics.commit_timer():
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
        with database.session_cursor(STATEMENTS) as (cursor, sql):
            results = [write_rows(cursor, sql, batch, stamp) for batch in batches]
        with metrics.commit_timer():
            session.commit()
    except BaseException:
        session.rollback()
        raise
    return results


# The write path runs fixed statements on the driver's cursor (a pooled connection of the
# request's own, or the session's inside its transaction: see fieldstation.db): building
# and compiling SQLAlchemy constructs cost more than the database work for a single
# reading (docs/performance.md). Every value is a bound parameter.


def rate_limit_passes_sql(channel: str, now: str) -> str:
    """The channel row ``channel`` accepts a write at ``now``: its minimum interval has passed.

    The rate limit's one statement; every write's first statement (the channel
    row's UPDATE) carries it, so the check and the stamp are one atomic step.
    """
    return (
        f"({channel}.min_interval_s = 0 OR {channel}.last_write_us IS NULL "
        f"OR {channel}.last_write_us + CAST({channel}.min_interval_s AS BIGINT) * {US} <= {now})"
    )


def mark_dirty_sql(rows: str) -> str:
    """Mark (field id, hour) rollup slots stale: ``rows`` gives them (a VALUES list or a SELECT).

    The generation goes up on every mark, so a refresh clears only marks it has
    seen (:mod:`fieldstation.rollups`). Every writer of readings runs this in its
    own transaction.
    """
    return (
        f"INSERT INTO rollup_dirty (field_id, ts, gen) {rows} "
        "ON CONFLICT (field_id, ts) DO UPDATE SET gen = rollup_dirty.gen + 1"
    )


@dataclass(frozen=True, slots=True)
class _Sql:
    """The write path's statements in one dialect's parameter style."""

    dialect: Dialect
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
    mark_dirty: str
    #: PostgreSQL only: ``reserve`` and ``fields`` in one round trip.
    reserve_fields: str | None
    #: The channel's calibrations and expressions (only read for a channel marked ``derived``).
    rules: str


def _statements(d: Dialect) -> _Sql:
    """The statements, written with ``?`` and bound for each driver; no value is ever formatted in."""
    bind = d.bind
    return _Sql(
        dialect=d,
        reserve=bind(
            "UPDATE channels SET last_entry_id = last_entry_id + ?, last_write_us = ? "  # noqa: S608
            f"WHERE id = ? AND {rate_limit_passes_sql('channels', '?')} RETURNING last_entry_id, derived"
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
            "SELECT ts, entry_id FROM entries WHERE channel_id = ? AND ts >= ? AND ts <= ? "  # noqa: S608
            f"AND {d.in_list('ts')}"
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
            bind(
                "WITH r AS (UPDATE channels SET last_entry_id = last_entry_id + ?, last_write_us = ? "  # noqa: S608
                f"WHERE id = ? AND {rate_limit_passes_sql('channels', '?')} "
                "RETURNING id, last_entry_id, derived), "
                "l AS (SELECT number, id FROM fields WHERE channel_id = (SELECT id FROM r) FOR KEY SHARE) "
                "SELECT r.last_entry_id, l.number, l.id, r.derived FROM r LEFT JOIN l ON true"
            )
            if d.round_trips
            else None
        ),
        mark_dirty=bind(mark_dirty_sql("VALUES (?, ?, 1)")),
        rules=bind(
            "SELECT number, name, cal_scale, cal_offset, expression FROM fields WHERE channel_id = ? "
            "ORDER BY number"
        ),
    )


#: The write path's statements for each engine (see :func:`fieldstation.db.per_dialect`).
STATEMENTS = database.per_dialect(_statements)


def write_rows(cur: Any, sql: _Sql, batch: Batch, now: int, prepared: _Prepared | None = None) -> WriteResult:
    """The whole write, on one cursor inside the caller's transaction (which commits it).

    For callers that own the connection (:mod:`fieldstation.ingest`'s single
    readings); others call :func:`write`.
    """
    if not batch.entries:
        raise BadRequest("nothing to write", code="empty")
    channel_id, entries = batch.channel_id, batch.entries
    last_entry_id, field_ids, derived = _lock_channel(
        cur, sql, channel_id, len(entries), now, batch.rate_limited
    )
    if derived:  # calibrations or computed fields: the batch as stored (fieldstation.derive)
        cur.execute(sql.rules, (channel_id,))
        batch = derive.apply(batch, derive.Rules.of([derive.FieldRule(*row) for row in cur.fetchall()]))
        entries, prepared = batch.entries, None
    if _is_batch(batch):
        result = _write_batch(cur, sql, batch, now, last_entry_id, field_ids, prepared)
        return writehooks.written(cur, sql.dialect.name, batch, now, result.points, result)
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
    return writehooks.written(
        cur, sql.dialect.name, batch, now, len(readings), WriteResult(stored, len(readings))
    )


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
        with database.cursor(STATEMENTS) as (cursor, sql):
            cursor.execute(sql.fields, (batch.channel_id,))
            field_ids = dict(cursor.fetchall())
        prepared = _prepare(batch, field_ids)
    with database.writer_turn(), database.transaction(STATEMENTS) as (cursor, sql):
        return write_rows(cursor, sql, batch, now, prepared)


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
    if batch.series is None:
        field_id = field_ids.__getitem__
        hours: dict[int, set[int]] = {}  # hour slot -> field numbers written in it
        for entry, ts in zip(batch.entries, timestamps, strict=True):
            values = entry.values
            readings.extend(zip(map(field_id, values), repeat(ts), values.values()))
            kinds.update(map(type, values.values()))
            start = slot_start(ts, HOUR)
            slot = hours.get(start)
            if slot is None:
                hours[start] = set(values)
            else:
                slot.update(values)
        marks.update((field_ids[number], slot) for slot, numbers in hours.items() for number in numbers)
        # Field by field, as series come: SQLite inserts them into the (field, ts) key in
        # fewer page visits than time-major rows (JSON batch under the lock 10.3 -> 9.6 ms).
        # The sort is stable, so a later value for the same key still comes later.
        readings.sort(key=itemgetter(0))
    else:
        hours_of = {ts: slot_start(ts, HOUR) for ts in timestamps}
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
    """Mark the (field, hour) rollup slots the write touched stale, in the write's transaction."""
    hours = sorted({(int(r[0]), slot_start(int(r[1]), HOUR)) for r in readings})  # type: ignore[call-overload]
    if len(hours) == 1:
        cur.execute(sql.mark_dirty, hours[0])
    else:
        cur.executemany(sql.mark_dirty, hours)


def _lock_channel(
    cur: Any, sql: _Sql, channel_id: int, count: int, now: int, rate_limited: bool = True
) -> tuple[int, dict[int, int], bool]:
    """Reserve ``count`` entry ids and enforce the rate limit; returns the new counter, field ids and
    whether the channel has calibrations or computed fields.

    On PostgreSQL one statement does both (an UPDATE … RETURNING in a CTE joined
    to the fields), saving a round trip on every write. Without ``rate_limited``
    the statement compares the last write with the end of time, so it always passes.
    """
    due = now if rate_limited else MAX_TS_US
    if sql.reserve_fields:
        cur.execute(sql.reserve_fields, (count, now, channel_id, due))
        rows = cur.fetchall()
        if rows:
            fields = {number: fid for _, number, fid, _ in rows if number is not None}
            return int(rows[0][0]), fields, bool(rows[0][3])
    else:
        cur.execute(sql.reserve, (count, now, channel_id, due))
        row = cur.fetchone()
        if row is not None:
            cur.execute(sql.fields, (channel_id,))
            return int(row[0]), dict(cur.fetchall()), bool(row[1])
    cur.execute(sql.interval, (channel_id,))
    found = cur.fetchone()
    if found is None:
        raise NotFound("channel not found")
    raise RateLimited(f"this channel accepts one update every {found[0]} s")


def _insert_stamped(
    cur: Any, sql: _Sql, channel_id: int, entry: Entry, entry_id: int, now: int
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
        stamps = sql.dialect.list_param(chunk)
        cur.execute(sql.existing, (channel_id, chunk[0], chunk[-1], stamps))
        found.update(cur.fetchall())
    return found


def _insert_many(cur: Any, sql: _Sql, table: str, statement: str, rows: Sequence[tuple[object, ...]]) -> None:
    """INSERT rows known to be new; PostgreSQL takes large batches through COPY (4.5x executemany)."""
    if sql.dialect.copies and len(rows) >= _COPY_MIN:
        with cur.copy(_COPY[table]) as copy:
            for row in rows:
                copy.write_row(row)
        return
    _many(cur, sql, statement, rows)


def _upsert_numbers(cur: Any, sql: _Sql, rows: Sequence[tuple[int, int, Value]]) -> None:
    """Upsert (field id, ts, number) rows; their ``text`` becomes NULL. PostgreSQL: COPY from 200 rows."""
    if sql.dialect.copies and len(rows) >= _COPY_MIN:
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
    if not sql.dialect.multirow_values or len(rows) < 2:
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
    if not sql.dialect.copies or len(rows) < _COPY_MIN:
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
        sql.dialect.copies
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
