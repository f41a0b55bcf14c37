"""The one path out for rows: entries, series, latest values, medians, and who may read them.

Every view (ThingSpeak feeds, the JSON API, CSV export, InfluxQL, the
dashboard) asks this module (rows) or :mod:`fieldstation.rollups` (time
buckets) and only formats what it returns. Timestamps are integer microseconds
since the epoch (UTC); windows are half-open ``[start, end)``. Every function
takes a row bound, so no request can start a runaway query. Reads check access
with :mod:`fieldstation.auth`'s read rule, inside their own statement.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import bindparam, select, text

from fieldstation import blocks, buckets
from fieldstation import db as database
from fieldstation.auth import KEY_SCOPE_SQL, KeyScope, can_read, hash_key, readable_sql
from fieldstation.db import Dialect
from fieldstation.errors import BadRequest
from fieldstation.extensions import db
from fieldstation.models import Channel, Field
from fieldstation.points import UNSTORABLE, get_zone
from fieldstation.timeunits import HOUR, MAX_TS_US, MIN_TS_US

#: Most rows one call may return.
MAX_LIMIT = 100_000


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


# -- fixed statements -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Sql:
    """The hot reads as fixed statements in one driver's parameter style.

    Building and compiling SQLAlchemy constructs, and its Row objects, cost more
    than these statements' database work. Every value is a bound parameter.
    """

    dialect: Dialect
    channel: str
    series_asc: str
    series_desc: str
    field_entries: str
    values_between: str
    texts: str
    database: str
    readable_names: str


def _statements(d: Dialect) -> _Sql:
    bind = d.bind
    series = "SELECT ts, value FROM readings WHERE field_id = ? AND ts >= ? AND ts < ? ORDER BY ts "
    return _Sql(
        dialect=d,
        # One row per field in the span (or one with NULL fields); the 12th column says whether
        # the key may read. Parameters: key hash, lowest and highest field number, channel id.
        channel=bind(
            "SELECT c.id, c.owner_id, c.name, c.description, c.public, c.latitude, c.longitude, "  # noqa: S608
            "c.elevation, c.last_entry_id, c.created_at, c.updated_at, "
            f"{readable_sql('c', 's.owner_id', 's.channel_id')}, f.id, f.number, f.name, f.unit, f.kind "
            f"FROM channels c LEFT JOIN ({KEY_SCOPE_SQL}) s ON true "
            "LEFT JOIN fields f ON f.channel_id = c.id AND f.number >= ? AND f.number <= ? "
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
        texts=bind(f"SELECT ts, text FROM readings WHERE field_id = ? AND {d.in_list('ts')}"),  # noqa: S608
        # An InfluxDB database name among the readable channels: a channel id first, then a
        # name, the key's own channels before public ones, then the oldest. Parameters: id,
        # name, the key's scope (owner id, channel id; NULL grants nothing), id, the scope again.
        # One row per field of that channel (or one with NULL fields): id, name, field id, name.
        database=bind(
            "SELECT d.id, d.name, f.id, f.name FROM (SELECT c.id, c.name FROM channels c "  # noqa: S608
            f"WHERE (c.id = ? OR c.name = ?) AND {readable_sql('c', '?', '?')} "
            "ORDER BY CASE WHEN c.id = ? THEN 0 ELSE 1 END, "
            "CASE WHEN c.owner_id = ? OR c.id = ? THEN 0 ELSE 1 END, c.id LIMIT 1) d "
            "LEFT JOIN fields f ON f.channel_id = d.id ORDER BY f.number"
        ),
        # Names of every readable channel, the key's own first. Parameters: the scope
        # (owner id, channel id) twice.
        readable_names=bind(
            f"SELECT c.name FROM channels c WHERE {readable_sql('c', '?', '?')} "  # noqa: S608
            "ORDER BY CASE WHEN c.owner_id = ? OR c.id = ? THEN 0 ELSE 1 END, c.id LIMIT 10000"
        ),
    )


_SQL = database.per_dialect(_statements)


# -- channels and access ----------------------------------------------------------------------


def readable_channel(channel_id: int, raw_key: str | None) -> Channel | None:
    """The channel's ORM object if ``raw_key`` may read it (the dashboard's pages need one).

    Unknown and forbidden channels both give None, so callers answer them alike.
    """
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
    #: gauge, power or counter (docs/energy.md): what the field's sums are.
    kind: str = "gauge"


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

    :mod:`fieldstation.auth`'s read rule (:func:`~fieldstation.auth.readable_sql`), checked in
    the one statement that also reads the channel and its fields: every API read starts here,
    and the ORM's lookups of channel, key and fields cost several times the 24-hour query's
    SQL. Only the fields numbered within ``numbers`` (lowest, highest) are read: ThingSpeak
    shows fields 1-8, and a request for field 1 of a 100-field channel need not load the
    other 99.
    """
    if not 0 <= channel_id < 2**63:
        return None
    key_hash = hash_key(raw_key) if raw_key else None
    low, high = max(numbers[0], ALL_FIELDS[0]), min(numbers[1], ALL_FIELDS[1])
    with database.cursor(_SQL, binary=True) as (cursor, sql):
        cursor.execute(sql.channel, (key_hash, low, high, channel_id))
        rows = cursor.fetchall()
    if not rows or not rows[0][11]:
        return None
    first = rows[0]
    fields = tuple(FieldInfo(r[12], r[13], r[14], r[15], r[16]) for r in rows if r[12] is not None)
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
class Database:
    """A channel as InfluxQL sees it: its name and its fields' (id, name)."""

    id: int
    name: str
    fields: list[tuple[int, str]]


def find_database(name: str, scope: KeyScope) -> Database | None:
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
    owner, channel = scope.owner_id, scope.channel_id
    with database.cursor(_SQL, binary=True) as (cursor, sql):
        cursor.execute(sql.database, (ident, name, owner, channel, ident, owner, channel))
        rows = cursor.fetchall()
    if not rows:
        return None
    fields = [(field_id, field_name) for _, _, field_id, field_name in rows if field_id is not None]
    return Database(int(rows[0][0]), rows[0][1], fields)


def readable_names(scope: KeyScope) -> list[str]:
    """Names of every channel ``scope`` may read: the key's own first, then public ones, oldest first."""
    owner, channel = scope.owner_id, scope.channel_id
    with database.cursor(_SQL) as (cursor, sql):
        cursor.execute(sql.readable_names, (owner, channel, owner, channel))
        rows = cursor.fetchall()
    return list(dict.fromkeys(name for (name,) in rows))


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
    with database.cursor(_SQL, binary=True) as (cursor, sql):
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
    with database.cursor(_SQL, binary=True) as (cursor, sql):
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
    with database.cursor(_SQL, binary=True) as (cursor, sql):
        pairs: list[tuple[int, float | None]]
        statement = sql.series_desc if descending else sql.series_asc
        if limit >= blocks.WORTHWHILE and hi - lo > 2 * HOUR:
            pairs = blocks.read(cursor, sql.dialect, statement, field_id, lo, hi, limit, descending)
        else:
            cursor.execute(statement, (field_id, lo, hi, limit))
            pairs = cursor.fetchall()
        missing = [ts for ts, value in pairs if value is None]
        if missing:
            stamps = sql.dialect.list_param(missing)
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


def iter_numbers(
    field_id: int, start: int, end: int, *, page: int = MAX_LIMIT
) -> Iterator[tuple[int, float]]:
    """(ts, value) of every numeric reading of a field in ``[start, end)``, oldest first: the driver's
    pairs in keyset pages (long ones from the read blocks), for functions that walk every value."""
    after: int | None = None
    while True:
        pairs = series_rows(field_id, start, end, limit=page, after=after).pairs
        for ts, value in pairs:
            if value is not None:
                yield ts, value
        if len(pairs) < page:
            return
        after = pairs[-1][0]


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


# -- exact aggregates: every value of each bucket -----------------------------------------------

#: Rank conditions over each bucket's readings numbered ``i`` of ``c`` in the order given,
#: as InfluxDB picks them: the middle one or two (median), the value at ``floor(c * p / 100 + 0.5)``
#: (percentile; floor written as a range, which both engines compute alike), the first ``n``
#: (top: largest first, bottom: smallest first; the earlier reading wins a tie). Constants, never input.
_RANKS = {
    "median": ("value, ts", "i IN ((c + 1) / 2, (c + 2) / 2)"),
    "percentile": ("value, ts", "i <= c * :p / 100.0 + 0.5 AND c * :p / 100.0 + 0.5 < i + 1"),
    "top": ("value DESC, ts", "i <= :n"),
    "bottom": ("value, ts", "i <= :n"),
    # the one or two readings at floor(h) and ceil(h), h = (c - 1) * p / 100 counted from 0
    "between": ("value, ts", "(c - 1) * :p / 100.0 > i - 2 AND (c - 1) * :p / 100.0 < i"),
}


class Ranked(NamedTuple):
    """A reading chosen by its rank in its bucket: bucket key, time, value, and the bucket's count."""

    key: int
    ts: int
    value: float
    total: int


def _over_buckets(
    field_ids: Sequence[int], start: int, end: int, plan: buckets.Plan, tail: str, params: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """``tail`` over ``k``: (bucket key ``b``, ``ts``, ``value``) of every numeric reading of
    ``field_ids`` in ``[start, end)``; the statement and its parameters. ``tail`` is a constant."""
    params |= {"ids": list(field_ids), "a": start, "z": end}
    key = plan.key_sql("ts", params)
    statement = text(
        f"WITH k AS (SELECT {key} AS b, ts, value FROM readings WHERE field_id IN :ids"  # noqa: S608
        f" AND ts >= :a AND ts < :z AND value IS NOT NULL) {tail}"
    ).bindparams(bindparam("ids", expanding=True))
    return statement, params


def _streamed(statement: Any, params: dict[str, Any], page: int) -> Any:
    """The statement's rows fetched ``page`` at a time (a server-side cursor on PostgreSQL)."""
    return db.session.execute(statement.execution_options(stream_results=True, yield_per=page), params)


def ranked(
    field_ids: Sequence[int], start: int, end: int, plan: buckets.Plan, kind: str, arg: float = 0.0
) -> list[Ranked]:
    """The readings at the ranks ``kind`` (a key of ``_RANKS``) names in each bucket, bucket by bucket.

    Exact and computed in the database: each bucket's numeric readings of ``field_ids`` in
    ``[start, end)`` are numbered in value order by a window function, so no value list is held
    here (the database sorts, spilling to disk where it must); one to ``arg`` rows per bucket
    come back, at most two per bucket plus MAX_LIMIT in all. ``arg`` is the percentile or the
    count of top/bottom.
    """
    order, condition = _RANKS[kind]
    # A percentile beyond [-100, 200] picks no value (its rank lies outside every bucket) however
    # far beyond, so it is held there: count x 1e308 would overflow, which PostgreSQL raises.
    params: dict[str, Any] = {"p": min(max(arg, -100.0), 200.0), "n": int(min(arg, MAX_LIMIT))}
    params["lim"] = 2 * buckets.MAX_BUCKETS + MAX_LIMIT
    tail = (
        f", o AS (SELECT b, ts, value, row_number() OVER (PARTITION BY b ORDER BY {order}) AS i,"  # noqa: S608 (constants of _RANKS)
        " count(*) OVER (PARTITION BY b) AS c FROM k)"
        f" SELECT b, ts, value, c FROM o WHERE {condition} ORDER BY b, i LIMIT :lim"
    )
    rows = db.session.execute(*_over_buckets(field_ids, start, end, plan, tail, params)).all()
    return [Ranked(int(b), int(ts), float(value), int(c)) for b, ts, value, c in rows]


#: Per bucket of numeric readings: the number of distinct values, and each distinct value with its
#: first time. Constants, never input.
_GROUPED = {
    "count_distinct": "SELECT b, count(DISTINCT value) FROM k GROUP BY b ORDER BY b",
    "distinct": "SELECT b, value, min(ts) AS t FROM k GROUP BY b, value ORDER BY b, t, value LIMIT :n",
}


def grouped(
    field_ids: Sequence[int], start: int, end: int, plan: buckets.Plan, kind: str
) -> list[tuple[Any, ...]]:
    """Rows of ``_GROUPED[kind]`` over the numeric readings of ``field_ids`` in ``[start, end)``:
    (bucket key, value[, first time]), at most MAX_LIMIT rows."""
    found = _over_buckets(field_ids, start, end, plan, _GROUPED[kind], {"n": MAX_LIMIT})
    return [tuple(row) for row in db.session.execute(*found).all()]


def value_runs(
    field_ids: Sequence[int], start: int, end: int, plan: buckets.Plan, *, page: int = 10_000
) -> Iterator[tuple[int, float, int, int, int]]:
    """(bucket key, value, readings, first time, last time) of each distinct numeric value per bucket,
    by bucket then value, streamed in pages (for mode(), which walks the values in order)."""
    tail = "SELECT b, value, count(*), min(ts), max(ts) FROM k GROUP BY b, value ORDER BY b, value"
    for b, value, count, first, last in _streamed(
        *_over_buckets(field_ids, start, end, plan, tail, {}), page
    ):
        yield int(b), float(value), int(count), int(first), int(last)


def bucket_values(
    field_ids: Sequence[int], start: int, end: int, plan: buckets.Plan
) -> Iterator[tuple[int, float]]:
    """(bucket key, value) of every numeric reading of ``field_ids``, in time order, streamed (for
    aggregates that walk the values twice, such as stddev): the fields' pages merged by time."""
    streams = [iter_numbers(field_id, start, end) for field_id in field_ids]
    merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda pair: pair[0])
    if plan.offsets:
        for ts, value in merged:
            yield plan.key_of(ts), value
    else:  # the key without a zone's steps, as Plan.key_of computes it, inline: a year is 525,600 calls
        shift, every = plan.shift, plan.every
        for ts, value in merged:
            yield (ts + shift) // every, value


def time_of_value(field_ids: Sequence[int], start: int, end: int, value: float) -> int | None:
    """The earliest time in ``[start, end)`` at which one of ``field_ids`` reads ``value`` (the point a
    ``min()`` or ``max()`` selected)."""
    statement = text(
        "SELECT min(ts) FROM readings WHERE field_id IN :ids AND ts >= :a AND ts < :z AND value = :v"
    ).bindparams(bindparam("ids", expanding=True))
    found = db.session.execute(statement, {"ids": list(field_ids), "a": start, "z": end, "v": value}).scalar()
    return None if found is None else int(found)


def medians(
    field_id: int, start: int, end: int, every: int, *, tz: str | dt.tzinfo | None = None
) -> list[tuple[int, float]]:
    """(bucket start, median) of the numeric readings per bucket, exact (:func:`ranked`).

    The median of an even count is the sum of the middle two's halves: their sum may overflow
    (PostgreSQL's avg() of two floats near 1e200 does).
    """
    buckets.check_window(start, end)
    if every < 1 or (end - start) // every > buckets.MAX_BUCKETS:
        raise BadRequest("bad bucket width for median", code="bad_every")
    plan = buckets.Plan.make(start, end, every, tz if isinstance(tz, dt.tzinfo) else get_zone(tz))
    middles: dict[int, list[float]] = {}
    for row in ranked([field_id], start, end, plan, "median"):
        middles.setdefault(row.key, []).append(row.value)
    return [
        (plan.start_of(b), pair[0] if len(pair) == 1 else pair[0] / 2 + pair[1] / 2)
        for b, pair in middles.items()
    ]


# -- checks -----------------------------------------------------------------------------------


def _check_limit(limit: int) -> int:
    if not 1 <= limit <= MAX_LIMIT:
        raise BadRequest(f"limit must be 1..{MAX_LIMIT}", code="bad_limit")
    return limit


# -- percentiles (beside medians) ---------------------------------------------------------------


def percentiles(
    field_id: int, start: int, end: int, every: int, percent: float, *, tz: str | dt.tzinfo | None = None
) -> list[tuple[int, float]]:
    """(bucket start, ``percent``-th percentile) of the numeric readings per bucket, exact (:func:`ranked`).

    Between the two nearest ranks, linearly (PostgreSQL's ``percentile_cont``, numpy's
    default): the value at rank ``h = (count - 1) * percent / 100`` counted from 0, so that
    percentile 50 is :func:`medians`' median, bit for bit (the middle one, or the halves of
    the middle two), and 0 and 100 are the minimum and the maximum. InfluxQL's
    ``percentile()`` picks the nearest rank instead, as InfluxDB does.

    :raise BadRequest: reversed window, bad width or more than MAX_BUCKETS buckets.
    """
    plan = buckets.plan(start, end, every, tz)
    fraction = min(max(percent, 0.0), 100.0) / 100
    near: dict[int, tuple[int, list[float]]] = {}
    for row in ranked([field_id], start, end, plan, "between", fraction * 100):
        near.setdefault(row.key, (row.total, []))[1].append(row.value)
    return [(plan.start_of(b), _between(c, fraction, values)) for b, (c, values) in near.items()]


def _between(count: int, fraction: float, values: list[float]) -> float:
    """The value at rank ``(count - 1) * fraction`` from the one or two values at the ranks beside it."""
    rank = (count - 1) * fraction
    share = rank - math.floor(rank)
    if share == 0 or len(values) == 1:
        return values[0]
    below, above = values
    # Each value weighted (no difference of the two, which may overflow); held between them.
    return min(max(below * (1 - share) + above * share, below), above)
