"""The one path out: rows, latest values and time buckets, computed in SQL on SQLite and PostgreSQL.

Every view (ThingSpeak feeds, the JSON API, CSV export, InfluxQL, the
dashboard) asks this module and only formats what it returns. Timestamps are
integer microseconds since the epoch (UTC); windows are half-open
``[start, end)``. Every function takes a row or bucket bound, so no request
can start a runaway query.

Aggregates skip text values (``value IS NULL``). Buckets come from the raw
readings or, when the bucket width allows, from the per-minute/hour/day
rollups kept by :mod:`fieldstation.rollups` (see docs/query.md).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import select, text

from fieldstation import blocks
from fieldstation.errors import BadRequest
from fieldstation.extensions import db
from fieldstation.models import Channel, Field
from fieldstation.points import MAX_TS_US, MIN_TS_US, UNSTORABLE, US, get_zone

SECOND = US
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
#: Most buckets one call may produce (a chart needs ~1,000; exports page through rows instead).
MAX_BUCKETS = 100_000
#: Most rows one call may return.
MAX_LIMIT = 100_000
#: The "nice" bucket widths auto_every chooses from.
NICE_WIDTHS = [
    s * SECOND for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
] + [DAY, 2 * DAY, 7 * DAY, 30 * DAY]
#: Added before integer division so that floor == truncation on both engines (ts may be < 0).
_SHIFT = -MIN_TS_US + DAY


class EntryRow(NamedTuple):
    """One entry of a channel with the values of (some of) its fields.

    A named tuple for the same reason as Point: feeds build one per row.
    """

    entry_id: int
    ts: int
    status: str | None
    latitude: float | None
    longitude: float | None
    elevation: float | None
    values: dict[int, float | str]


class Point(NamedTuple):
    """One reading: a number, or a text (then ``value`` is None).

    A named tuple, not a dataclass: ranges build thousands per request, and a
    tuple straight from the driver's row costs a fraction of a frozen dataclass.
    """

    ts: int
    value: float | None
    text: str | None


@dataclass(frozen=True, slots=True)
class Bucket:
    """Aggregates of the numeric readings in ``[start, start + every)``."""

    start: int
    count: int
    avg: float | None
    min: float | None
    max: float | None
    sum: float | None
    first: float | None
    last: float | None


# -- fixed statements -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sql:
    """The hot reads as fixed statements in one driver's parameter style.

    Building and compiling SQLAlchemy constructs, and its Row objects, cost more
    than these statements' database work. Every value is a bound parameter.
    """

    #: PostgreSQL: lists travel as arrays (SQLite: as JSON text for json_each), results in binary.
    arrays: bool
    dialect: str
    channel: str
    series_asc: str
    series_desc: str
    field_entries: str
    values_between: str
    texts: str
    key_scope: str
    database: str


def _statements(dialect: str) -> _Sql:
    pg = dialect == "postgresql"

    def bind(statement: str) -> str:
        return statement.replace("?", "%s") if pg else statement

    series = "SELECT ts, value FROM readings WHERE field_id = ? AND ts >= ? AND ts < ? ORDER BY ts "
    return _Sql(
        arrays=pg,
        dialect=dialect,
        # One row per field in the span (or one with NULL fields); the 12th column says whether
        # the key may read. Parameters: key hash, lowest and highest field number, channel id.
        channel=bind(
            "SELECT c.id, c.owner_id, c.name, c.description, c.public, c.latitude, c.longitude, "
            "c.elevation, c.last_entry_id, c.created_at, c.updated_at, "
            "(c.public OR EXISTS (SELECT 1 FROM api_keys k WHERE k.key_hash = ? "
            "AND k.revoked_at IS NULL AND ((k.kind = 'user' AND k.user_id = c.owner_id) "
            "OR (k.kind <> 'user' AND k.channel_id = c.id)))), "
            "f.id, f.number, f.name, f.unit "
            "FROM channels c LEFT JOIN fields f ON f.channel_id = c.id AND f.number >= ? AND f.number <= ? "
            "WHERE c.id = ? ORDER BY f.number"
        ),
        series_asc=bind(series + "ASC LIMIT ?"),
        series_desc=bind(series + "DESC LIMIT ?"),
        # Every reading has an entry (store.write makes both); the join drops none.
        field_entries=bind(
            "SELECT r.ts, r.value, r.text, e.entry_id, e.status, e.latitude, e.longitude, e.elevation "
            "FROM readings r JOIN entries e ON e.channel_id = ? AND e.ts = r.ts "
            "WHERE r.field_id = ? AND r.ts >= ? AND r.ts < ? ORDER BY r.ts DESC LIMIT ?"
        ),
        values_between=bind(
            "SELECT f.number, r.ts, r.value, r.text FROM fields f JOIN readings r ON r.field_id = f.id "
            "WHERE f.channel_id = ? AND r.ts >= ? AND r.ts <= ? ORDER BY f.number"
        ),
        texts=bind(
            "SELECT ts, text FROM readings WHERE field_id = ? AND ts = ANY(?)"
            if pg
            else "SELECT ts, text FROM readings WHERE field_id = ? AND ts IN (SELECT value FROM json_each(?))"
        ),
        # What a live key may read: its owner's channels (user key) or its own channel.
        key_scope=bind(
            "SELECT kind, user_id, channel_id FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL"
        ),
        # An InfluxDB database name among the readable channels: a channel id first, then a
        # name, the key's own channels before public ones, then the oldest. Parameters: id,
        # name, the key's scope (owner id, channel id; NULL grants nothing), id, the scope again.
        # One row per field of that channel (or one with NULL fields): id, name, field id, name.
        database=bind(
            "SELECT d.id, d.name, f.id, f.name FROM (SELECT c.id, c.name FROM channels c "
            "WHERE (c.id = ? OR c.name = ?) AND (c.public OR c.owner_id = ? OR c.id = ?) "
            "ORDER BY CASE WHEN c.id = ? THEN 0 ELSE 1 END, "
            "CASE WHEN c.owner_id = ? OR c.id = ? THEN 0 ELSE 1 END, c.id LIMIT 1) d "
            "LEFT JOIN fields f ON f.channel_id = d.id ORDER BY f.number"
        ),
    )


_SQL = {name: _statements(name) for name in ("sqlite", "postgresql")}


@contextmanager
def _cursor() -> Iterator[tuple[Any, _Sql]]:
    """A DBAPI cursor for the read statements.

    Outside a session transaction (every read request), the request's pooled
    connection in autocommit on PostgreSQL: without it psycopg wraps a read in
    BEGIN … ROLLBACK, two of the request's round trips. Inside one (a request that
    has written through the session), the session's connection, so that reads see
    what it wrote. psycopg's cursor asks for results in binary format, which it
    decodes in a third less time than text (1,440 rows of the 24-hour query: 0.64
    instead of 0.94 ms).
    """
    from fieldstation import store

    if store.session_busy():
        connection = db.session.connection()
        with _opened(connection.connection, connection.dialect.name) as found:
            yield found
        return
    with store.autocommit_connection() as (dbapi, dialect), _opened(dbapi, dialect) as found:
        yield found


@contextmanager
def _opened(dbapi: Any, dialect: str) -> Iterator[tuple[Any, _Sql]]:
    sql = _SQL[dialect]
    cursor = dbapi.cursor(binary=True) if sql.arrays else dbapi.cursor()
    try:
        yield cursor, sql
    finally:
        cursor.close()


# -- channels and access ----------------------------------------------------------------------


def readable_channel(channel_id: int, raw_key: str | None) -> Channel | None:
    """The channel's ORM object if ``raw_key`` may read it (the dashboard's pages need one).

    Unknown and forbidden channels both give None, so callers answer them alike.
    """
    from fieldstation.auth import can_read

    channel = db.session.get(Channel, channel_id)
    if channel is None or not can_read(channel, raw_key):
        return None
    return channel


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """A field as the read API needs it: a plain snapshot, not an ORM object."""

    id: int
    number: int
    name: str
    unit: str | None


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    """A channel's settings and fields as the read API needs them, from one fixed statement.

    ``fields`` holds the fields numbered within the span given to :func:`read_access`.
    """

    id: int
    owner_id: int
    name: str
    description: str
    public: bool
    latitude: float | None
    longitude: float | None
    elevation: float | None
    last_entry_id: int
    created_at: dt.datetime
    updated_at: dt.datetime
    fields: tuple[FieldInfo, ...]

    def field(self, number: int) -> FieldInfo | None:
        """Field ``number``, or None."""
        for field in self.fields:
            if field.number == number:
                return field
        return None


#: Every field number (read_access's default span).
ALL_FIELDS = (0, 2**31 - 1)


def read_access(
    channel_id: int, raw_key: str | None, numbers: tuple[int, int] = ALL_FIELDS
) -> ChannelInfo | None:
    """The channel and its fields if ``raw_key`` may read it, else None (unknown and forbidden alike).

    The same rule as :func:`fieldstation.auth.can_read` (public; a read or write key of the
    channel; the owner's user key), checked in the one statement that also reads the channel
    and its fields: every API read starts here, and the ORM's lookups of channel, key and
    fields cost several times the 24-hour query's SQL (issue #4). Only the fields numbered
    within ``numbers`` (lowest, highest) are read: ThingSpeak shows fields 1-8, and a
    request for field 1 of a 100-field channel need not load the other 99.
    """
    if not 0 <= channel_id < 2**63:
        return None
    from fieldstation.auth import hash_key

    key_hash = hash_key(raw_key) if raw_key else None
    low, high = max(numbers[0], ALL_FIELDS[0]), min(numbers[1], ALL_FIELDS[1])
    with _cursor() as (cursor, sql):
        cursor.execute(sql.channel, (key_hash, low, high, channel_id))
        rows = cursor.fetchall()
    if not rows or not rows[0][11]:
        return None
    first = rows[0]
    fields = tuple(FieldInfo(r[12], r[13], r[14], r[15]) for r in rows if r[12] is not None)
    return ChannelInfo(
        first[0],
        first[1],
        first[2],
        first[3] or "",
        bool(first[4]),
        first[5],
        first[6],
        first[7],
        first[8],
        _utc(first[9]),
        _utc(first[10]),
        fields,
    )


@dataclass(frozen=True, slots=True)
class KeyScope:
    """What a live key may read: its owner's channels (a user key) or its own channel."""

    owner_id: int | None
    channel_id: int | None


def key_scope(raw_key: str) -> KeyScope | None:
    """The scope of a live key, or None when the key is unknown or revoked."""
    from fieldstation.auth import hash_key

    with _cursor() as (cursor, sql):
        cursor.execute(sql.key_scope, (hash_key(raw_key),))
        row = cursor.fetchone()
    if row is None:
        return None
    kind, user_id, channel_id = row
    return KeyScope(user_id, None) if kind == "user" else KeyScope(None, channel_id)


@dataclass(frozen=True, slots=True)
class Database:
    """A channel as InfluxQL sees it: its name and its fields' (id, name)."""

    id: int
    name: str
    fields: list[tuple[int, str]]


def find_database(name: str, scope: KeyScope | None) -> Database | None:
    """The readable channel an InfluxDB database name stands for, or None.

    A name that is a channel id (written as ``str(id)`` writes it) names that channel;
    otherwise the name is matched, the key's own channels first. Readable is
    :func:`fieldstation.auth.can_read`'s rule. One fixed statement, with the fields:
    Grafana sends a query per panel, and loading every readable channel with the ORM
    to pick one cost more than the 24-hour query itself.
    """
    if UNSTORABLE.search(name):  # no channel is named so (and PostgreSQL cannot compare a NUL)
        return None
    digits = name.isascii() and name.isdigit() and len(name) < 19 and str(int(name)) == name
    ident = int(name) if digits else None
    owner, channel = (scope.owner_id, scope.channel_id) if scope else (None, None)
    with _cursor() as (cursor, sql):
        cursor.execute(sql.database, (ident, name, owner, channel, ident, owner, channel))
        rows = cursor.fetchall()
    if not rows:
        return None
    fields = [(field_id, field_name) for _, _, field_id, field_name in rows if field_id is not None]
    return Database(int(rows[0][0]), rows[0][1], fields)


def _utc(value: dt.datetime | str) -> dt.datetime:
    """A UTCDateTime column as the driver returns it (SQLite: naive text) -> aware UTC."""
    moment = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def field_of(channel_id: int, number: int) -> Field | None:
    """Field ``number`` of a channel, or None."""
    return db.session.scalar(select(Field).where(Field.channel_id == channel_id, Field.number == number))


# -- entries ----------------------------------------------------------------------------------


def latest_entry(channel_id: int) -> EntryRow | None:
    """The newest entry of a channel with all its values, or None when it has none."""
    rows = entries(channel_id, None, None, limit=1)
    return rows[0] if rows else None


def entries(
    channel_id: int,
    start: int | None,
    end: int | None,
    *,
    limit: int,
    fields: Sequence[int] | None = None,
    with_status: bool = False,
) -> list[EntryRow]:
    """The newest ``limit`` entries in ``[start, end)``, returned oldest -> newest.

    ``fields`` restricts the values returned (entries without those values are
    still listed); ``with_status`` lists only entries that carry a status.
    """
    limit = _check_limit(limit)
    lo = MIN_TS_US if start is None else start
    hi = MAX_TS_US + 1 if end is None else end
    status_filter = " AND status IS NOT NULL" if with_status else ""
    rows = db.session.execute(
        text(
            "SELECT entry_id, ts, status, latitude, longitude, elevation FROM entries "  # noqa: S608
            f"WHERE channel_id = :c AND ts >= :lo AND ts < :hi{status_filter} ORDER BY ts DESC LIMIT :n"
        ),
        {"c": channel_id, "lo": lo, "hi": hi, "n": limit},
    ).all()[::-1]
    if not rows:
        return []
    values = _values_between(channel_id, rows[0].ts, rows[-1].ts, fields)
    return [
        EntryRow(r.entry_id, r.ts, r.status, r.latitude, r.longitude, r.elevation, values.get(r.ts, {}))
        for r in rows
    ]


def entries_after(channel_id: int, start: int, end: int, *, after: int | None, limit: int) -> list[EntryRow]:
    """Up to ``limit`` entries in ``[start, end)`` after ``after`` (exclusive), oldest first.

    Keyset paging for exports: each page is one bounded index range scan.
    """
    limit = _check_limit(limit)
    lo = start if after is None else max(start, after + 1)
    rows = db.session.execute(
        text(
            "SELECT entry_id, ts, status, latitude, longitude, elevation FROM entries "
            "WHERE channel_id = :c AND ts >= :lo AND ts < :hi ORDER BY ts LIMIT :n"
        ),
        {"c": channel_id, "lo": lo, "hi": end, "n": limit},
    ).all()
    if not rows:
        return []
    values = _values_between(channel_id, rows[0].ts, rows[-1].ts, None)
    return [
        EntryRow(r.entry_id, r.ts, r.status, r.latitude, r.longitude, r.elevation, values.get(r.ts, {}))
        for r in rows
    ]


def field_entries(
    channel_id: int, field_id: int, number: int, start: int | None, end: int | None, *, limit: int
) -> list[EntryRow]:
    """The newest ``limit`` entries in the window that have a value of field ``number``, oldest first.

    Only that field's value is returned (ThingSpeak's ``/fields/<n>`` feeds).
    """
    limit = _check_limit(limit)
    lo = MIN_TS_US if start is None else start
    hi = MAX_TS_US + 1 if end is None else end
    with _cursor() as (cursor, sql):
        cursor.execute(sql.field_entries, (channel_id, field_id, lo, hi, limit))
        rows = cursor.fetchall()
    rows.reverse()
    return [
        EntryRow(entry_id, ts, status, lat, lon, elev, {number: value if value is not None else (txt or "")})
        for ts, value, txt, entry_id, status, lat, lon, elev in rows
    ]


def _values_between(
    channel_id: int, lo: int, hi: int, fields: Sequence[int] | None
) -> dict[int, dict[int, float | str]]:
    """Values of the channel's fields with ``lo <= ts <= hi``, by timestamp then field number.

    Every reading belongs to an entry (store.write makes both), so this is
    exactly the values of the entries in that span. One statement for all
    fields: a statement per field made the latest entry of a 100-field channel
    cost 14 ms.
    """
    wanted = set(fields) if fields is not None else None
    result: dict[int, dict[int, float | str]] = {}
    with _cursor() as (cursor, sql):
        cursor.execute(sql.values_between, (channel_id, lo, hi))
        for number, ts, value, txt in cursor.fetchall():
            if wanted is None or number in wanted:
                result.setdefault(ts, {})[number] = value if value is not None else txt
    return result


def latest_values(channel_id: int) -> dict[int, Point]:
    """The newest reading of every field of a channel, by field number (fields without data omitted)."""
    rows = db.session.execute(
        text(
            "SELECT f.number, r.ts, r.value, r.text FROM fields f JOIN readings r "
            "ON r.field_id = f.id AND r.ts = (SELECT max(ts) FROM readings WHERE field_id = f.id) "
            "WHERE f.channel_id = :c ORDER BY f.number"
        ),
        {"c": channel_id},
    ).all()
    return {number: Point(ts, value, txt) for number, ts, value, txt in rows}


# -- one field --------------------------------------------------------------------------------


def series(
    field_id: int,
    start: int,
    end: int,
    *,
    limit: int,
    descending: bool = False,
    after: int | None = None,
) -> list[Point]:
    """Readings of one field in ``[start, end)``, oldest first (or newest first).

    ``after`` continues a page: only readings strictly beyond it in the
    direction of travel (keyset paging; no OFFSET).
    """
    got = series_rows(field_id, start, end, limit=limit, descending=descending, after=after)
    if not got.texts:
        return [Point(ts, value, None) for ts, value in got.pairs]
    return [Point(ts, value, got.texts.get(ts) if value is None else None) for ts, value in got.pairs]


class SeriesRows(NamedTuple):
    """Readings of one field as the driver returns them, for callers that format every row at once.

    Text values are fetched apart, only for the readings that have one: with ``text`` in
    every row PostgreSQL must visit the table for each reading instead of answering
    from the covering primary key ``(field_id, ts) INCLUDE (value)`` (twice the time
    for the 24-hour window).
    """

    #: (ts, value) in the order asked for; value is None for a text reading.
    pairs: list[tuple[int, float | None]]
    #: The text of each reading whose value is None, by timestamp.
    texts: dict[int, str | None]


def series_rows(
    field_id: int,
    start: int,
    end: int,
    *,
    limit: int,
    descending: bool = False,
    after: int | None = None,
) -> SeriesRows:
    """:func:`series` as the driver's plain tuples.

    The hottest read (charts, firmware, the 24-hour window): fixed statements on
    the driver's cursor, no SQLAlchemy Row objects. Long reads take whole hours
    from the read blocks (:mod:`fieldstation.blocks`); a short one is one statement.
    """
    limit = _check_limit(limit)
    lo, hi = start, end
    if after is not None:
        if descending:
            hi = min(hi, after)
        else:
            lo = max(lo, after + 1)
    texts: dict[int, str | None] = {}
    with _cursor() as (cursor, sql):
        pairs: list[tuple[int, float | None]]
        statement = sql.series_desc if descending else sql.series_asc
        if limit >= blocks.WORTHWHILE and hi - lo > 2 * HOUR:
            pairs = blocks.read(cursor, sql.dialect, statement, field_id, lo, hi, limit, descending)
        else:
            cursor.execute(statement, (field_id, lo, hi, limit))
            pairs = cursor.fetchall()
        missing = [ts for ts, value in pairs if value is None]
        if missing:
            stamps = missing if sql.arrays else json.dumps(missing)
            cursor.execute(sql.texts, (field_id, stamps))
            texts.update(cursor.fetchall())
    return SeriesRows(pairs, texts)


def iter_series(field_id: int, start: int, end: int, *, page: int = 5000) -> Iterator[Point]:
    """Every reading of a field in ``[start, end)``, oldest first, fetched in keyset pages."""
    after: int | None = None
    while True:
        rows = series(field_id, start, end, limit=page, after=after)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].ts


def iter_entries(channel_id: int, start: int, end: int, *, page: int = 2000) -> Iterator[EntryRow]:
    """Every entry of a channel in ``[start, end)``, oldest first, fetched in keyset pages."""
    after: int | None = None
    while True:
        rows = entries_after(channel_id, start, end, after=after, limit=page)
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].ts


def last_point(field_id: int) -> Point | None:
    """The newest reading of one field."""
    rows = series(field_id, MIN_TS_US, MAX_TS_US + 1, limit=1, descending=True)
    return rows[0] if rows else None


# -- buckets ----------------------------------------------------------------------------------


def auto_every(start: int, end: int, max_points: int) -> int:
    """The smallest "nice" width (1 s … 30 d) that gives at most ``max_points`` buckets."""
    if max_points < 1:
        raise BadRequest("max_points must be at least 1", code="bad_every")
    span = max(end - start, 1)
    for width in NICE_WIDTHS:
        if -(-span // width) <= max_points:
            return width
    return NICE_WIDTHS[-1]


def buckets(
    field_id: int, start: int, end: int, every: int, *, tz: str | dt.tzinfo | None = None
) -> list[Bucket]:
    """Non-empty buckets of ``every`` µs over ``[start, end)``, oldest first.

    Widths under a day align to the epoch (UTC); whole-day widths align to
    local midnight in ``tz`` (DST-aware: such a bucket may be 23 or 25 hours).
    Partial buckets at the window's ends only hold the readings inside it.

    :raise BadRequest: reversed window, bad width or more than MAX_BUCKETS buckets.
    """
    zone = tz if isinstance(tz, dt.tzinfo) else get_zone(tz)
    _check_window(start, end)
    if every < 1:
        raise BadRequest("bucket width must be positive", code="bad_every")
    if (end - start) // every > MAX_BUCKETS:
        raise BadRequest(f"at most {MAX_BUCKETS} buckets per query; widen 'every'", code="too_many_buckets")
    if end <= start:
        return []
    plan = _Plan.make(start, end, every, zone)
    from fieldstation import rollups

    partials = rollups.aggregate(field_id, start, end, plan)
    return [plan.bucket(key, part) for key, part in partials.items()]


def summary(field_id: int, start: int, end: int) -> Bucket | None:
    """Aggregates of every numeric reading of one field in ``[start, end)`` (None when there are none)."""
    _check_window(start, end)
    if end <= start:
        return None
    every = end - start
    plan = _Plan(every, -(-(_SHIFT + start) // every) * every - start, None, (), single=True)
    from fieldstation import rollups

    parts = list(rollups.aggregate(field_id, start, end, plan).values())
    if not parts:
        return None
    total = parts[0]
    for part in parts[1:]:
        total = total.merge(part)
    return Bucket(
        start, total.count, total.sum / total.count, total.min, total.max, total.sum, total.first, total.last
    )


def bucket_starts(start: int, end: int, every: int, *, tz: str | dt.tzinfo | None = None) -> list[int]:
    """Start of every bucket that overlaps ``[start, end)``, empty or not (for InfluxQL's fill()).

    :raise BadRequest: more than MAX_BUCKETS buckets.
    """
    zone = tz if isinstance(tz, dt.tzinfo) else get_zone(tz)
    _check_window(start, end)
    if every < 1 or (end - start) // every > MAX_BUCKETS:
        raise BadRequest(
            f"at most {MAX_BUCKETS} buckets per query; widen the interval", code="too_many_buckets"
        )
    if end <= start:
        return []
    plan = _Plan.make(start, end, every, zone)
    first, last = plan.key_of(start), plan.key_of(end - 1)
    return [plan.start_of(k) for k in range(first, last + 1)]


@dataclass(frozen=True, slots=True)
class Partial:
    """Mergeable aggregates of part of a bucket."""

    count: int
    sum: float
    min: float
    max: float
    first: float
    last: float

    def merge(self, later: Partial) -> Partial:
        """Combine with the aggregates of a later, disjoint time range."""
        return Partial(
            self.count + later.count,
            self.sum + later.sum,
            min(self.min, later.min),
            max(self.max, later.max),
            self.first,
            later.last,
        )


@dataclass(frozen=True, slots=True)
class _Plan:
    """How timestamps map to bucket keys: ``(ts + offset(ts) + shift) // every``.

    ``offsets`` are (from_ts, utc_offset_us) steps of the zone inside the
    window; empty when the offset is 0 throughout (UTC, or sub-day widths).
    """

    every: int
    shift: int
    zone: dt.tzinfo | None
    offsets: tuple[tuple[int, int], ...]
    #: One bucket for the whole window (any rollup level fits).
    single: bool = False

    @classmethod
    def make(cls, start: int, end: int, every: int, zone: dt.tzinfo) -> _Plan:
        shift = -(-_SHIFT // every) * every
        local = every % DAY == 0 and zone is not dt.UTC
        steps = zone_offsets(zone, start, end) if local else ()
        if all(off == 0 for _, off in steps):
            steps = ()
        return cls(every, shift, zone if local else None, tuple(steps))

    def key_sql(self, column: str, params: dict[str, Any]) -> str:
        """SQL for the bucket key of ``column`` (params are added to ``params``)."""
        params["k_shift"] = self.shift
        params["k_every"] = self.every
        offset = self.offset_sql(column, params)
        return f"(({column}) + {offset} + :k_shift) / :k_every"

    def offset_sql(self, column: str, params: dict[str, Any]) -> str:
        """A CASE over the zone's offset steps (bound parameters only), or 0."""
        if not self.offsets:
            return "0"
        parts = []
        for i, (since, _) in enumerate(self.offsets[1:], start=1):
            params[f"k_t{i}"] = since
            params[f"k_o{i - 1}"] = self.offsets[i - 1][1]
            parts.append(f"WHEN {column} < :k_t{i} THEN :k_o{i - 1}")
        last = len(self.offsets) - 1
        params[f"k_o{last}"] = self.offsets[last][1]
        return f"(CASE {' '.join(parts)} ELSE :k_o{last} END)" if parts else f":k_o{last}"

    def key_of(self, ts: int) -> int:
        """The bucket key of one timestamp (as key_sql computes it in SQL)."""
        offset = 0
        for since, off in self.offsets:
            if ts >= since:
                offset = off
        if self.offsets and ts < self.offsets[0][0]:
            offset = self.offsets[0][1]
        return (ts + offset + self.shift) // self.every

    def aligned(self, width: int) -> bool:
        """Whether rows pre-aggregated into ``width``-wide epoch-aligned slots fall in one bucket each."""
        if self.single:
            return True
        if self.every % width:
            return False
        return all(since % width == 0 and off % width == 0 for since, off in self.offsets[1:]) and all(
            off % width == 0 for _, off in self.offsets[:1]
        )

    def start_of(self, key: int) -> int:
        """UTC start of the bucket with this key."""
        local_start = key * self.every - self.shift
        if self.zone is None:
            return local_start
        day = dt.date(1970, 1, 1) + dt.timedelta(days=local_start // DAY)
        midnight = dt.datetime(day.year, day.month, day.day, tzinfo=self.zone)
        # A local midnight skipped by DST: fold keeps zoneinfo's later offset; good enough.
        return _to_us(midnight)

    def bucket(self, key: int, part: Partial) -> Bucket:
        """The finished bucket for a key."""
        return Bucket(
            self.start_of(key),
            part.count,
            part.sum / part.count if part.count else None,
            part.min,
            part.max,
            part.sum,
            part.first,
            part.last,
        )


def zone_offsets(zone: dt.tzinfo, start: int, end: int) -> list[tuple[int, int]]:
    """(from_ts, utc offset in µs) for each offset step of ``zone`` within ``[start, end)``.

    Found by probing once a day and bisecting to the second where the offset changes.
    """

    def offset(ts: int) -> int:
        moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts)
        delta = moment.astimezone(zone).utcoffset() or dt.timedelta(0)
        return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds

    lo = max(start, MIN_TS_US + DAY)
    hi = min(end, MAX_TS_US - DAY)
    steps = [(start, offset(lo))]
    probe = lo
    while probe < hi:
        nxt = min(probe + DAY, hi)
        if offset(nxt) != offset(probe):
            a, b = probe, nxt  # offset(a) differs from offset(b); find the first ts with offset(b)
            while b - a > SECOND:
                mid = (a + b) // 2
                if offset(mid) == offset(a):
                    a = mid
                else:
                    b = mid
            # Transitions fall on whole seconds: the one multiple of a second in (a, b].
            since = -(-(a + 1) // SECOND) * SECOND
            steps.append((since, offset(since)))
        probe = nxt
    return steps


def _to_us(moment: dt.datetime) -> int:
    delta = moment - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * US + delta.microseconds


#: Sums on PostgreSQL are taken of values scaled by 2**-64 (exact: a power of two), so that
#: they cannot overflow, and scaled back where the result fits (the largest float / 2**64).
#: Values under 2**-900 are summed apart, unscaled: scaled, the tiniest would underflow,
#: which PostgreSQL raises as an error too.
_SCALE_DOWN = "5.421010862427522e-20::float8"
_SCALE_UP = "18446744073709551616::float8"
_SCALED_MAX = "9.745314011399998e288::float8"
_TINY = "1.1830521861667747e-271::float8"


def sum_sql(column: str) -> str:
    """The sum of a float column that never fails, as SQL for the session's engine.

    PostgreSQL raises on a float8 sum beyond the float range (two readings of
    1e308 in one slot made every chart of the field a 500). There the values are
    summed scaled down by 2**-64, which changes no bit of the result (scaling by a
    power of two and rounding commute while no value is subnormal), and the sum
    is scaled back up, or is ±Infinity beyond the float range, as SQLite's own sum
    gives. Infinities of both signs add up to NaN, which reads as +Infinity on
    PostgreSQL; SQLite cannot hold NaN and gives NULL, which reads as 0.
    """
    if db.session.get_bind().dialect.name != "postgresql":
        return f"coalesce(sum({column}), 0.0)"
    big = f"coalesce(sum(CASE WHEN abs({column}) >= {_TINY} THEN {column} * {_SCALE_DOWN} END), 0)"
    tiny = f"coalesce(sum(CASE WHEN abs({column}) < {_TINY} THEN {column} END), 0)"
    return (
        f"CASE WHEN {big} > {_SCALED_MAX} THEN 'Infinity'::float8 "
        f"WHEN {big} < -{_SCALED_MAX} THEN '-Infinity'::float8 ELSE {big} * {_SCALE_UP} + {tiny} END"
    )


def raw_partials(field_id: int, start: int, end: int, plan: _Plan) -> list[tuple[int, Partial]]:
    """Bucket partials straight from the readings of one field (numeric values only)."""
    params: dict[str, Any] = {"f": field_id, "a": start, "z": end}
    key = plan.key_sql("ts", params)
    rows = db.session.execute(
        text(
            "WITH g AS ("  # noqa: S608 - key is built from constants and bound parameters
            f" SELECT {key} AS b, count(value) AS n, {sum_sql('value')} AS s, min(value) AS lo,"
            "  max(value) AS hi, min(ts) AS t0, max(ts) AS t1"
            " FROM readings WHERE field_id = :f AND ts >= :a AND ts < :z AND value IS NOT NULL"
            " GROUP BY 1)"
            " SELECT g.b, g.n, g.s, g.lo, g.hi, rf.value, rl.value FROM g"
            " JOIN readings rf ON rf.field_id = :f AND rf.ts = g.t0"
            " JOIN readings rl ON rl.field_id = :f AND rl.ts = g.t1"
            " ORDER BY g.b"
        ),
        params,
    ).all()
    return [(int(b), Partial(int(n), float(s), lo, hi, first, last)) for b, n, s, lo, hi, first, last in rows]


#: Most readings one median query looks at (medians need every value, not a running aggregate).
MAX_MEDIAN_ROWS = 100_000


def medians(
    field_id: int, start: int, end: int, every: int, *, tz: str | dt.tzinfo | None = None
) -> list[tuple[int, float]]:
    """(bucket start, median) of the numeric readings per bucket, via window functions on both engines.

    Bounded: only the newest MAX_MEDIAN_ROWS readings of the window count.
    """
    _check_window(start, end)
    if every < 1 or (end - start) // every > MAX_BUCKETS:
        raise BadRequest("bad bucket width for median", code="bad_every")
    plan = _Plan.make(start, end, every, tz if isinstance(tz, dt.tzinfo) else get_zone(tz))
    params: dict[str, Any] = {"f": field_id, "a": start, "z": end, "n": MAX_MEDIAN_ROWS}
    key = plan.key_sql("ts", params)
    rows = db.session.execute(
        text(
            "WITH r AS (SELECT ts, value FROM readings WHERE field_id = :f AND ts >= :a AND ts < :z"  # noqa: S608
            " AND value IS NOT NULL ORDER BY ts DESC LIMIT :n),"
            f" k AS (SELECT {key} AS b, value FROM r),"
            " o AS (SELECT b, value, row_number() OVER (PARTITION BY b ORDER BY value) AS i,"
            " count(*) OVER (PARTITION BY b) AS c FROM k)"
            # The middle value, or halves of the middle two (their sum may overflow; PostgreSQL's
            # avg() of two floats near 1e200 does).
            " SELECT b, CASE WHEN count(*) = 1 THEN min(value) ELSE min(value) / 2 + max(value) / 2 END"
            " FROM o WHERE i IN ((c + 1) / 2, (c + 2) / 2) GROUP BY b ORDER BY b"
        ),
        params,
    ).all()
    return [(plan.start_of(int(b)), float(m)) for b, m in rows]


# -- checks -----------------------------------------------------------------------------------


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be 1..{MAX_LIMIT}", code="bad_limit")
    return limit


def _check_window(start: int, end: int) -> None:
    if start > end:
        raise BadRequest("start is after end", code="bad_range")
    if start < MIN_TS_US - DAY or end > MAX_TS_US + DAY:
        raise BadRequest("time range out of bounds", code="bad_range")
