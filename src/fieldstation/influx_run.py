"""Run parsed InfluxQL statements against channels: a database is a channel, a series is a field.

Databases are the channels the credentials may read, named by channel name
(or id). Measurements, tags and field keys come from the field names
(:mod:`fieldstation.seriesnames`). Every SELECT reads through
:mod:`fieldstation.query` with a row or bucket bound. Which series a statement reads (``FROM``
names or regular expressions, ``WHERE`` tag conditions) is decided in Python over the channel's
series (:mod:`fieldstation.tagmatch`), never in SQL.
"""

from __future__ import annotations

import datetime as dt
import functools
import heapq
import itertools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from fieldstation import influx_subquery, query, rollups, tagmatch
from fieldstation.auth import KeyScope, key_scope
from fieldstation.buckets import Bucket, Plan, bucket_starts, whole
from fieldstation.buckets import plan as buckets_plan
from fieldstation.errors import BadRequest, FieldstationError, Unauthorized
from fieldstation.influx_functions import (
    arithmetic,
    cumulative_sum,
    derivative,
    difference,
    filled,
    integral,
    integral_of_slots,
    median,
    modes,
    moving_average,
    stddevs,
)
from fieldstation.influxql import (
    FUNCTIONS,
    SELECTORS,
    TRANSFORMS,
    BinaryOp,
    Call,
    CreateDatabase,
    Duration,
    Expr,
    FieldRef,
    Number,
    Select,
    SelectColumn,
    Show,
    Statement,
    calls,
    column_names,
)
from fieldstation.params import format_time, format_times
from fieldstation.points import get_zone
from fieldstation.query import MAX_LIMIT
from fieldstation.seriesnames import SeriesName, parse_field_name
from fieldstation.timeunits import HOUR, MAX_TS_US, MIN_TS_US, MINUTE, SECOND

#: Most values one raw SELECT returns (rows x columns x series).
MAX_CELLS = 1_000_000
EPOCH_US = {"h": HOUR, "m": MINUTE, "s": SECOND, "ms": 1000, "u": 1, "µ": 1}


@dataclass(frozen=True, slots=True)
class FieldSeries:
    field_id: int
    name: SeriesName


class Databases:
    """The channels these credentials may read, found as each statement names its database.

    :raise Unauthorized: a key was given but is unknown or revoked (before any statement runs).
    """

    def __init__(self, raw_key: str | None) -> None:
        self.raw_key = raw_key
        scope = key_scope(raw_key)
        if scope is None:
            raise Unauthorized("authorization failed")
        self.scope: KeyScope = scope

    def find(self, name: str) -> query.Database:
        """The readable channel called ``name`` (or with that id), with all its fields.

        :raise BadRequest: none matches (unknown and forbidden alike).
        """
        if not name:
            raise BadRequest("database name required")
        channel = query.find_database(name, self.scope)
        if channel is None:
            raise BadRequest(f"database not found: {name}")
        return channel

    def names(self) -> list[str]:
        """Names of every readable channel: the key's own first, then public ones, oldest first."""
        return query.readable_names(self.scope)


def run(statements: list[Statement], raw_key: str | None, database: str, epoch: str | None) -> dict[str, Any]:
    """InfluxDB's ``{"results": [...]}``; a failing statement reports its error in its own result."""
    if epoch is not None and epoch not in EPOCH_US and epoch != "ns":
        raise BadRequest(f"invalid epoch: {epoch[:10]}")
    databases = Databases(raw_key)
    results: list[dict[str, Any]] = []
    for number, statement in enumerate(statements):
        try:
            series = _run_one(statement, databases, database, epoch)
        except Unauthorized:
            raise
        except FieldstationError as exc:
            results.append({"statement_id": number, "error": exc.message})
            continue
        result: dict[str, Any] = {"statement_id": number}
        if series:
            result["series"] = series
        results.append(result)
    return {"results": results}


def _run_one(
    statement: Statement, databases: Databases, database: str, epoch: str | None
) -> list[dict[str, Any]]:
    if isinstance(statement, CreateDatabase):
        databases.find(statement.name)  # exists and readable: nothing to create
        return []
    if isinstance(statement, Show):
        return _show(statement, databases, database)
    if statement.invalid is not None:
        raise BadRequest(statement.invalid)
    inner = statement.subquery
    channel = databases.find(statement.database or (inner.database if inner else None) or database)
    if inner is not None:
        return _subquery_select(statement, channel, epoch)
    return _select(statement, channel, epoch)


def _series_of(channel: query.Database) -> list[FieldSeries]:
    return [FieldSeries(field_id, _series_name(name, channel.name)) for field_id, name in channel.fields]


@functools.lru_cache(maxsize=4096)
def _series_name(name: str, channel_name: str) -> SeriesName:
    """Field names parsed once per process: every query of a 100-field channel asks for all of them."""
    return parse_field_name(name, channel_name)


# -- SHOW -------------------------------------------------------------------------------------


def _show(stmt: Show, databases: Databases, database: str) -> list[dict[str, Any]]:
    if stmt.what == "databases":
        names = databases.names()
        return [{"name": "databases", "columns": ["name"], "values": [[n] for n in names[: stmt.limit]]}]
    if stmt.what == "retention policies":
        databases.find(stmt.database or database)
        return [
            {
                "columns": ["name", "duration", "shardGroupDuration", "replicaN", "default"],
                "values": [["autogen", "0s", "168h0m0s", 1, True]],
            }
        ]
    channel = databases.find(stmt.database or database)
    shown = _in_source(_series_of(channel), stmt.measurement, stmt.measurement_regex)
    every = [s.name for s in shown if _passes(s.name, stmt)] if stmt.tags else [s.name for s in shown]
    measurements = sorted({s.measurement for s in every})
    if stmt.what == "measurements":
        found = _page([[m] for m in measurements], stmt)
        return [{"name": "measurements", "columns": ["name"], "values": found}] if found else []
    if stmt.what == "series":
        keys = _page([[k] for k in sorted({s.series_key for s in every})], stmt)
        return [{"columns": ["key"], "values": keys}] if keys else []
    result = []
    for measurement in measurements:
        members = [s for s in every if s.measurement == measurement]
        if stmt.what == "field keys":
            rows: list[list[Any]] = [[k, "float"] for k in sorted({s.key for s in members})]
            columns = ["fieldKey", "fieldType"]
        elif stmt.what == "tag keys":
            rows = [[k] for k in sorted({k for s in members for k, _ in s.tags})]
            columns = ["tagKey"]
        else:
            pairs = {(k, v) for s in members for k, v in s.tags if _key_wanted(k, stmt)}
            rows = [[k, v] for k, v in sorted(pairs)]
            columns = ["key", "value"]
        rows = _page(rows, stmt)
        if rows:
            result.append({"name": measurement, "columns": columns, "values": rows})
    return result


def _key_wanted(key: str, stmt: Show) -> bool:
    """``SHOW TAG VALUES WITH KEY …``: ``=``/``IN`` any of the keys, or ``!=``, ``=~``, ``!~`` the one."""
    if stmt.key_op == "=":
        return key in stmt.keys
    return tagmatch.compare(stmt.key_op, key, stmt.keys[0])


def _page(rows: list[list[Any]], stmt: Show) -> list[list[Any]]:
    """``OFFSET`` then ``LIMIT`` of a SHOW answer's rows."""
    rows = rows[stmt.offset :]
    return rows if stmt.limit is None else rows[: stmt.limit]


# -- SELECT -----------------------------------------------------------------------------------


def _subquery_select(stmt: Select, channel: query.Database, epoch: str | None) -> list[dict[str, Any]]:
    """``SELECT … FROM (SELECT …)``: the inner statement through the engine (at most MAX_CELLS
    values in its answer), the outer one over its points in memory (:mod:`fieldstation.influx_subquery`)."""
    from fieldstation.timeunits import now_us

    inner = influx_subquery.inner_statement(stmt)
    if inner.invalid is not None:
        raise BadRequest(inner.invalid)
    answer = _select(inner, channel, "u", budget=MAX_CELLS)
    series = [
        influx_subquery.Rows(s["name"], s.get("tags", {}), s["columns"][1:], s["values"]) for s in answer
    ]
    zone = get_zone(stmt.tz)
    output = []
    for found in influx_subquery.evaluate(stmt, series, zone, now_us()):
        times = _times([ts for ts, _ in found.rows], epoch, zone)
        result: dict[str, Any] = {"name": found.name}
        if stmt.group_tags:
            result["tags"] = dict(zip(sorted(set(stmt.group_tags)), found.tags, strict=True))
        result["columns"] = ["time", *found.columns]
        result["values"] = [[time, *cells] for time, (_, cells) in zip(times, found.rows, strict=True)]
        output.append(result)
    return output


def _select(
    stmt: Select, channel: query.Database, epoch: str | None, budget: int | None = None
) -> list[dict[str, Any]]:
    """The series of one SELECT; ``budget``: the most values its answer may hold (a subquery's)."""
    sources = _in_source(_series_of(channel), stmt.measurement, stmt.measurement_regex)
    matching = [s for s in sources if _passes(s.name, stmt)] if stmt.tags else sources
    if not matching:
        return []
    # InfluxDB names a series' tags in key order and lists series in that order, whatever GROUP BY's.
    group_tags = sorted(set(stmt.group_tags))
    if group_tags == ["*"]:  # every tag key of the measurements read, whatever WHERE keeps
        group_tags = sorted({k for s in sources for k, _ in s.name.tags})
    groups: dict[tuple[str, tuple[str, ...]], list[FieldSeries]] = {}
    for s in matching:
        groups.setdefault((s.name.measurement, tuple(s.name.tag(t) for t in group_tags)), []).append(s)
    raw = not stmt.has_calls and all(c.expr is None for c in stmt.columns)
    shape = _raw_shape(stmt, sources, group_tags) if raw else None
    if shape is not None and not shape.fields:
        return []  # only tags selected: InfluxDB answers no series
    zone = get_zone(stmt.tz)
    output = []
    # DESC orders series too.
    for (measurement, values), members in sorted(
        _series_window(groups, group_tags, stmt), reverse=stmt.descending
    ):
        table: list[Any]
        if stmt.has_calls and (any(c.expr is not None for c in stmt.columns) or stmt.fill == "linear"):
            columns, rows = _expr_rows(stmt, members)
            rows = rows[stmt.offset :]
            table = [[_time(ts, epoch, zone), *row] for ts, row in rows[: stmt.limit]]
        elif any(c.expr is not None for c in stmt.columns):
            columns, table = _raw_expr_table(stmt, members, epoch)
        elif shape is None:
            columns, rows = _aggregate_rows(stmt, members)
            rows = rows[stmt.offset :]
            if stmt.limit is not None:
                rows = rows[: stmt.limit]
            table = [[_time(ts, epoch, zone), *row] for ts, row in rows]
        else:
            columns, table = _raw_table(stmt, members, epoch, shape)
        if not table:
            continue
        if budget is not None:
            budget -= len(table) * (len(columns) + 1)
            if budget < 0:
                raise BadRequest(
                    f"a subquery may answer at most {MAX_CELLS} values;"
                    " narrow its time range or widen its GROUP BY time()"
                )
        series: dict[str, Any] = {"name": measurement}
        if group_tags:
            series["tags"] = dict(zip(group_tags, values, strict=True))
        series["columns"] = ["time", *columns]
        series["values"] = table
        output.append(series)
    return output


def _in_source(series: list[FieldSeries], measurement: str | None, pattern: str | None) -> list[FieldSeries]:
    """The series of ``FROM``'s measurement, or of those its ``/regex/`` matches (each distinct
    name matched once); all of them when neither is given."""
    if pattern is not None:
        names = {s.name.measurement for s in series}
        chosen = {n for n in names if tagmatch.compare("=~", n, pattern)}
        return [s for s in series if s.name.measurement in chosen]
    if measurement is None:
        return series
    return [s for s in series if s.name.measurement == measurement]


def _passes(name: SeriesName, stmt: Select | Show) -> bool:
    return all(condition.holds(name.tag) for condition in stmt.tags)


_GroupItem = tuple[tuple[str, tuple[str, ...]], list[FieldSeries]]


def _series_window(
    groups: dict[tuple[str, tuple[str, ...]], list[FieldSeries]], group_tags: list[str], stmt: Select
) -> list[_GroupItem]:
    """``SLIMIT``/``SOFFSET``: the output series (tag sets) answered, per measurement, as InfluxDB 1.6
    picks them: in the order of its tag-set keys (``key|value|…`` of the tags a series has, so a
    series without a tag comes after those with it), and, as its ``LimitTagSets`` does, no series at
    all for ``SOFFSET`` without ``SLIMIT``."""
    if stmt.slimit is None and not stmt.soffset:
        return list(groups.items())
    chosen: list[_GroupItem] = []
    for measurement in sorted({m for m, _ in groups}):
        mine = sorted(
            ((m, values) for m, values in groups if m == measurement),
            key=lambda item: _tag_set_key(group_tags, item[1]),
        )
        limit = stmt.slimit or 0
        if stmt.soffset > len(mine):
            continue
        limit = min(limit, len(mine) - stmt.soffset)
        chosen += [(item, groups[item]) for item in mine[stmt.soffset : stmt.soffset + limit]]
    return chosen


def _tag_set_key(keys: list[str], values: tuple[str, ...]) -> bytes:
    """InfluxDB's tag-set key: ``key|value`` of each GROUP BY tag the series has, joined by ``|``."""
    return "|".join(f"{k}|{v}" for k, v in zip(keys, values, strict=True) if v).encode()


def _time(ts: int, epoch: str | None, zone: dt.tzinfo = dt.UTC) -> int | str:
    if epoch is None:
        return format_time(ts) if zone is dt.UTC and not ts % SECOND else _rfc3339([ts], zone)[0]
    if epoch == "ns":
        return ts * 1000
    return ts // EPOCH_US[epoch]


def _times(stamps: list[int], epoch: str | None, zone: dt.tzinfo = dt.UTC) -> list[Any]:
    """:func:`_time` of every row at once."""
    if epoch is None:
        return _rfc3339(stamps, zone)
    if epoch == "ns":
        return [ts * 1000 for ts in stamps]
    unit = EPOCH_US[epoch]
    return stamps if unit == 1 else [ts // unit for ts in stamps]


_FRACTION_ZEROS = re.compile(r"\.?0+(?=Z|[+-]\d\d:\d\d$)")


def _rfc3339(stamps: list[int], zone: dt.tzinfo) -> list[str]:
    """Times as InfluxDB prints them (Go's RFC 3339 with nanoseconds): a fraction only as long as it
    needs, ``tz()``'s offset (``2020-03-29T00:00:00+01:00``), ``Z`` where the offset is zero."""
    if zone is dt.UTC:
        texts = format_times(stamps)
    else:
        texts = [format_time(ts, zone) for ts in stamps]
        texts = [t[:-6] + "Z" if t.endswith("+00:00") else t for t in texts]
    if "." in "".join(texts):  # rare (most sensors write whole seconds); a join is the cheapest look
        texts = [_FRACTION_ZEROS.sub("", t) if "." in t else t for t in texts]
    return texts


@dataclass(frozen=True, slots=True)
class _RawShape:
    """The columns of a raw SELECT: names in order, which are fields, which are tags (filled from
    each series' tags, as InfluxDB fills ``SELECT *`` and ``SELECT "tag"``)."""

    names: list[str]
    fields: dict[int, str]  # column index -> field key
    tags: dict[int, str]  # column index -> tag key


def _raw_shape(stmt: Select, sources: list[FieldSeries], group_tags: list[str]) -> _RawShape:
    """``SELECT *``: every field key and every tag key not grouped by, sorted, of the measurements the
    statement reads (whatever WHERE keeps, as InfluxDB); a named column is a tag when those
    measurements have such a tag key and no such field key."""
    field_keys = {s.name.key for s in sources}
    tag_keys = {k for s in sources for k, _ in s.name.tags} - field_keys
    if stmt.columns[0].field == "*":
        keys = sorted(field_keys | (tag_keys - set(group_tags)))
        names = keys
    else:
        keys = [c.field for c in stmt.columns]
        names = [c.name for c in stmt.columns]
    fields = {i: k for i, k in enumerate(keys) if k not in tag_keys}
    tags = {i: k for i, k in enumerate(keys) if k in tag_keys}
    return _RawShape(names, fields, tags)


def _raw_table(
    stmt: Select, members: list[FieldSeries], epoch: str | None, shape: _RawShape
) -> tuple[list[str], list[Any]]:
    """Raw values, one row ``[time, value, …]`` per timestamp in the order asked for, bounded by
    LIMIT (or MAX_LIMIT) after OFFSET."""
    names = shape.names
    start = MIN_TS_US if stmt.start is None else stmt.start
    end = MAX_TS_US + 1 if stmt.end is None else stmt.end
    # At most MAX_CELLS values per statement, however many columns SELECT * names.
    cap = min(MAX_LIMIT, MAX_CELLS // max(1, len(names) * len(members)))
    bound = max(1, min((stmt.limit or MAX_LIMIT) + stmt.offset, cap))
    wanted = [(index, s) for index, key in shape.fields.items() for s in members if s.name.key == key]
    zone = get_zone(stmt.tz)
    if len(names) == 1 and len(wanted) == 1:
        # One series, as a Grafana panel asks: the driver's rows, in order, formatted at once.
        got = query.series_rows(wanted[0][1].field_id, start, end, limit=bound, descending=stmt.descending)
        texts = got.texts
        pairs: list[tuple[int, Any]] = got.pairs
        if texts:
            pairs = [(ts, v if v is not None else texts.get(ts)) for ts, v in pairs]
        if stmt.offset or stmt.limit is not None:
            pairs = pairs[stmt.offset : stmt.offset + (stmt.limit or MAX_LIMIT)]
        unit = EPOCH_US.get(epoch or "")
        if unit is not None:  # epoch=ms, as Grafana asks: one pass, the driver's tuples serialise as arrays
            return names, pairs if unit == 1 else [(ts // unit, value) for ts, value in pairs]
        return names, list(
            zip(_times([ts for ts, _ in pairs], epoch, zone), [v for _, v in pairs], strict=True)
        )
    # A row per time and tag set, as InfluxDB answers: points of series that differ only by
    # tags are rows of their own even at the same time, fields of one series share a row.
    # Rows are keyed by one int, time x tag sets + the tag set's rank, which sorts as (time,
    # tags) would: a tuple key per row cost twice the time and a third more memory.
    ranks = {tags: rank for rank, tags in enumerate(sorted({s.name.tags for _, s in wanted}))}
    sets = len(ranks)
    table: dict[int, list[Any]] = {}
    for index, s in wanted:
        got = query.series_rows(s.field_id, start, end, limit=bound, descending=stmt.descending)
        rank = ranks[s.name.tags]
        for ts, value in got.pairs:
            key = ts * sets + rank
            row = table.get(key)
            if row is None:
                row = table[key] = _tag_cells(shape, s.name)
            row[index] = value if value is not None else got.texts.get(ts)
    order = sorted(table, reverse=stmt.descending)[stmt.offset : bound]
    times = _times([key // sets for key in order], epoch, zone)
    return names, [[time, *table[key]] for time, key in zip(times, order, strict=True)]


def _tag_cells(shape: _RawShape, name: SeriesName) -> list[Any]:
    """A new row: its tag columns filled from the series (null where it lacks the tag)."""
    row: list[Any] = [None] * len(shape.names)
    if shape.tags:
        tags = dict(name.tags)
        for index, key in shape.tags.items():
            row[index] = tags.get(key)
    return row


def _aggregate_rows(
    stmt: Select, members: list[FieldSeries]
) -> tuple[list[str], list[tuple[int, list[Any]]]]:
    """One row per GROUP BY time() bucket (with fill), or one row over the whole window."""
    names = column_names(stmt.columns)
    if stmt.every is None:
        start = MIN_TS_US if stmt.start is None else stmt.start
        end = MAX_TS_US + 1 if stmt.end is None else stmt.end
        parts = [
            [rollups.summary(s.field_id, start, end) for s in _fields_for(c, members)] for c in stmt.columns
        ]
        cells = [_combine(c, found) for c, found in zip(stmt.columns, parts, strict=True)]
        if all(cell is None for cell in cells):
            return names, []
        time = 0 if stmt.start is None else stmt.start
        if len(stmt.columns) == 1 and stmt.columns[0].function in ("first", "last"):
            time = _selected_at(stmt.columns[0].function or "", parts[0])
        elif len(stmt.columns) == 1 and stmt.columns[0].function in ("min", "max"):
            ids = [s.field_id for s in _fields_for(stmt.columns[0], members)]
            found = query.time_of_value(ids, start, end, cells[0])
            time = time if found is None else found
        return names, [(time, cells)]
    if stmt.start is None:
        raise BadRequest("GROUP BY time() needs a lower time bound in WHERE (time > now() - 1h)")
    from fieldstation.timeunits import now_us

    end = now_us() + 1 if stmt.end is None else stmt.end
    zone = get_zone(stmt.tz)
    grid = _grid(stmt, zone)
    planned = buckets_plan(stmt.start, end, stmt.every, **grid)
    per_column: list[dict[int, Any]] = []
    for column in stmt.columns:
        series = _fields_for(column, members)
        by_start: dict[int, list[Bucket | None]] = {}
        for s in series:
            for b in rollups.buckets(s.field_id, stmt.start, end, stmt.every, **grid):
                by_start.setdefault(b.start, []).append(b)
        values: dict[int, Any] = {}
        ids = [s.field_id for s in series]
        for ts, pieces in by_start.items():
            value = _combine(column, pieces)
            values.setdefault(_row_time(column.function, planned, ts, pieces, value, ids), value)
        per_column.append(values)
    if not any(per_column):
        return names, []  # no point in the window: no series, whatever the fill
    if planned.offsets:  # a DST change may move a selector's row, and fill() steps over it per column
        return names, _joined_columns(stmt, planned, stmt.start, end, per_column)
    times = (
        sorted(set().union(*per_column))
        if stmt.fill == "none"
        else planned.output_starts(stmt.start, end, ())
    )
    if stmt.descending:  # filled in the order asked for: fill(previous) takes the later bucket
        times.reverse()
    columns = [
        filled(times, [values.get(t) for t in times], stmt.fill, count=column.function == "count")
        for column, values in zip(stmt.columns, per_column, strict=True)
    ]
    return names, [(ts, list(cells)) for ts, cells in zip(times, zip(*columns, strict=True), strict=True)]


def _joined_columns(
    stmt: Select, planned: Plan, start: int, end: int, per_column: list[dict[int, Any]]
) -> list[tuple[int, list[Any]]]:
    """Rows of columns filled each on its own times, as InfluxDB's fill() steps for each, joined by
    time (a selector's row a DST change moved stands apart, its other cells filled as InfluxDB fills)."""
    by_column = []
    for column, values in zip(stmt.columns, per_column, strict=True):
        if stmt.fill == "none":
            times = sorted(values)
        else:
            times = planned.output_starts(start, end, values, descending=stmt.descending)
        if stmt.descending:
            times.reverse()
        cells = filled(times, [values.get(t) for t in times], stmt.fill, count=column.function == "count")
        by_column.append(dict(zip(times, cells, strict=True)))
    times = sorted(set().union(*by_column), reverse=stmt.descending)
    return _joined(times, by_column, stmt.fill)


def _row_time(
    function: str | None, planned: Plan, ts: int, parts: list[Bucket | None], value: Any, ids: list[int]
) -> int:
    """The time of a bucket's row for one column: its start, but for a selector in a local bucket that
    a DST change cuts, the start of InfluxDB's window of the point it selected (:meth:`Plan.window_start`)."""
    if value is None or function not in ("first", "last", "min", "max") or not planned.relabels:
        return ts
    if function in ("first", "last"):
        return planned.window_start(_selected_at(function, parts))
    later = planned.start_of(planned.key_of(ts) + 1)
    if planned.window_start(later - 1) == ts:
        return ts  # no change inside: the window of every point of the bucket is the bucket
    found = query.time_of_value(ids, ts, later, value)  # a query for the few buckets a change cuts
    return ts if found is None else planned.window_start(found)


def _grid(stmt: Select, zone: dt.tzinfo) -> dict[str, Any]:
    """Where GROUP BY time()'s buckets lie, as InfluxDB puts them: moved by time()'s offset, and every
    width aligned to local time in tz()'s zone (:meth:`fieldstation.buckets.Plan.make`)."""
    return {"tz": zone, "origin": stmt.origin, "local": True}


def _selected_at(function: str, parts: list[Bucket | None]) -> int:
    """The time of the point ``first()`` or ``last()`` selects among one or more series, as InfluxDB
    answers a query whose one column is that selector (a single-stat panel shows its age)."""
    chosen = _chosen(function, parts)
    assert chosen is not None  # only asked when the column has a value
    return chosen.first_at if function == "first" else chosen.last_at


def _chosen(function: str, parts: Sequence[Bucket | None]) -> Bucket | None:
    """The bucket whose first (or last) point ``first()`` (``last()``) picks over several series: the
    earliest (latest) point, and of points at the same time the greatest value, as InfluxDB's
    ``FloatFirstReduce``/``FloatLastReduce`` decide."""
    found = [p for p in parts if p is not None and p.count]
    if not found:
        return None
    if function == "first":
        return min(found, key=lambda p: (p.first_at, -(p.first or 0.0)))
    return max(found, key=lambda p: (p.last_at, p.last or 0.0))


def _fields_for(column: SelectColumn, members: list[FieldSeries]) -> list[FieldSeries]:
    return [s for s in members if s.name.key == column.field]


def _combine(column: SelectColumn, parts: list[Bucket | None]) -> Any:
    """One column's value from the buckets of one or more series (same time span)."""
    found = [p for p in parts if p is not None and p.count]
    if not found:
        return None
    function = column.function or "mean"
    if function in ("first", "last"):
        chosen = _chosen(function, found)
        return None if chosen is None else getattr(chosen, function)
    count = sum(p.count for p in found)
    total = sum(p.sum or 0.0 for p in found)
    if function == "mean":
        return total / count
    if function == "count":
        return count
    if function == "sum":
        return total
    if function == "min":
        return min(p.min for p in found if p.min is not None)
    if function == "max":
        return max(p.max for p in found if p.max is not None)
    return None


# -- expressions: functions with arguments, transformations, arithmetic --------------------------


@dataclass(frozen=True, slots=True)
class _Context:
    """What every call of one statement's tag group shares: its series, window and buckets."""

    stmt: Select
    members: list[FieldSeries]
    start: int
    end: int
    zone: Any

    def ids(self, field: str) -> list[int]:
        return [s.field_id for s in self.members if s.name.key == field]

    @property
    def default_time(self) -> int:
        """The time of an aggregate's row without GROUP BY time(): the window's start, else 0."""
        return 0 if self.stmt.start is None else self.stmt.start


#: Transformations whose window InfluxDB widens by one interval before the first bucket.
_EXTENDED = (
    "derivative",
    "non_negative_derivative",
    "difference",
    "non_negative_difference",
    "moving_average",
)


def _column_expr(column: SelectColumn) -> Expr:
    if column.expr is not None:
        return column.expr
    if column.function is None:
        return FieldRef(column.field)
    return Call(column.function, (FieldRef(column.field),))


def _expr_rows(stmt: Select, members: list[FieldSeries]) -> tuple[list[str], list[tuple[int, list[Any]]]]:
    """Rows of a statement whose columns are expressions over calls: each column evaluates to
    points (time, value), and rows join them by time, as InfluxDB's output does."""
    exprs = [_column_expr(c) for c in stmt.columns]
    found = [call for e in exprs for call in calls(e)]
    if stmt.descending and any(c.name in TRANSFORMS or c.name == "integral" for c in found):
        raise BadRequest("ORDER BY time DESC is not supported with transformations or integral()")
    if stmt.every is not None and stmt.start is None:
        raise BadRequest("GROUP BY time() needs a lower time bound in WHERE (time > now() - 1h)")
    from fieldstation.timeunits import now_us

    start = MIN_TS_US if stmt.start is None else stmt.start
    default_end = MAX_TS_US + 1 if stmt.every is None else now_us() + 1
    ctx = _Context(stmt, members, start, default_end if stmt.end is None else stmt.end, get_zone(stmt.tz))
    lone = len(exprs) == 1 and len(found) == 1 and found[0].name in SELECTORS
    evaluated = [_column_points(expr, ctx, lone) for expr in exprs]
    columns = [_by_time(points) for points in evaluated]
    if not any(v is not None for column in columns for v in column.values()):
        return column_names(stmt.columns), []  # no point in the window: no series, whatever the fill
    if len(columns) == 1:  # top(), bottom() and distinct() may give several rows at one time
        # InfluxDB lists top() and bottom() in time order even under ORDER BY time DESC.
        backwards = stmt.descending and not any(c.name in ("top", "bottom") for c in found)
        rows = [(ts, [value]) for ts, value in sorted(evaluated[0], key=lambda p: p[0], reverse=backwards)]
    else:
        times = sorted({ts for column in columns for ts in column}, reverse=stmt.descending)
        rows = _joined(times, columns, stmt.fill if stmt.every is not None else "null")
    if stmt.every is None or stmt.fill == "none":
        rows = [(ts, row) for ts, row in rows if any(v is not None for v in row)]
    return column_names(stmt.columns), rows


def _column_points(expr: Expr, ctx: _Context, lone: bool) -> list[tuple[int, Any]]:
    """One column's points. Without GROUP BY time() an aggregate's row is at the window's start (0
    without one; integral() always 0), unless the column is the statement's lone selector."""
    points = _evaluate(expr, ctx, 0)
    if isinstance(points, float):
        raise BadRequest("field must contain at least one variable")
    found = calls(expr)
    if (
        ctx.stmt.every is None
        and not lone
        and not any(c.name in TRANSFORMS + ("top", "bottom") for c in found)
    ):
        at = 0 if any(c.name == "integral" for c in found) else ctx.default_time
        points = [(at, value) for _, value in points]
    return points


def _joined(
    times: list[int], columns: list[dict[int, Any]], fill: str | float
) -> list[tuple[int, list[Any]]]:
    """Rows of several columns joined by time. A column without a point at a row's time (a
    transformation's dropped step beside an aggregate's bucket) takes fill()'s number or its previous
    row's value, as InfluxDB fills its output; else null."""
    rows: list[tuple[int, list[Any]]] = []
    previous: list[Any] = [None] * len(columns)
    for ts in times:
        row = []
        for i, column in enumerate(columns):
            if ts in column:
                row.append(column[ts])
            elif isinstance(fill, float):
                row.append(fill)
            else:
                row.append(previous[i] if fill == "previous" else None)
        previous = row
        rows.append((ts, row))
    return rows


def _by_time(points: list[tuple[int, Any]]) -> dict[int, Any]:
    """Points by time; several at one time (top() of two series, distinct()) keep the first."""
    result: dict[int, Any] = {}
    for ts, value in points:
        result.setdefault(ts, value)
    return result


def _evaluate(expr: Expr, ctx: _Context, lead: int) -> list[tuple[int, Any]] | float:
    """Points (time, value or None) of an expression, oldest first, or a constant.

    ``lead`` buckets before the window's first are included (a transformation of an aggregate
    needs the bucket before the first, as InfluxDB reads it).
    """
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, BinaryOp):
        return _combine_points(expr.op, _evaluate(expr.left, ctx, lead), _evaluate(expr.right, ctx, lead))
    if isinstance(expr, Call):
        if expr.name in TRANSFORMS:
            return _transform(expr, ctx)
        return _aggregate(expr, ctx, lead)
    raise BadRequest("mixing aggregate and non-aggregate queries is not supported")


def _combine_points(
    op: str, left: list[tuple[int, Any]] | float, right: list[tuple[int, Any]] | float
) -> list[tuple[int, Any]] | float:
    if isinstance(left, float) and isinstance(right, float):
        return arithmetic(op, left, right) or 0.0
    if isinstance(left, float):
        return [(ts, arithmetic(op, left, v)) for ts, v in right]  # type: ignore[union-attr]
    if isinstance(right, float):
        return [(ts, arithmetic(op, v, right)) for ts, v in left]
    others = _by_time(right)
    return [(ts, arithmetic(op, v, others.get(ts))) for ts, v in left]


def _transform(call: Call, ctx: _Context) -> list[tuple[int, Any]]:
    """A transformation of the raw points of a field, or of an aggregate per GROUP BY time() bucket
    (empty buckets skipped after fill, the bucket before the window's first read too)."""
    inner = call.args[0]
    every = ctx.stmt.every
    if isinstance(inner, FieldRef):
        points: Iterable[tuple[int, float]] = _raw_points(ctx.ids(inner.name), ctx.start, ctx.end)
        first = ctx.start
    else:
        lead = 1 if call.name in _EXTENDED else 0
        got = _evaluate(inner, ctx, lead)
        assert not isinstance(got, float)  # the parser requires a call inside
        points = [(ts, v) for ts, v in got if v is not None]
        first = (
            bucket_starts(ctx.start, ctx.start + 1, every, **_grid(ctx.stmt, ctx.zone))[0]
            if every
            else ctx.start
        )
    name = call.name
    unit_arg = call.args[1] if len(call.args) > 1 else None
    if name in ("derivative", "non_negative_derivative"):
        unit = unit_arg.us if isinstance(unit_arg, Duration) else (every if every else SECOND)
        out = derivative(points, unit, non_negative=name.startswith("non_"))
    elif name in ("difference", "non_negative_difference"):
        out = difference(points, non_negative=name.startswith("non_"))
    elif name == "cumulative_sum":
        out = cumulative_sum(points)
    else:
        size = call.args[1]
        assert isinstance(size, Number)
        out = moving_average(points, int(size.value))
    bound = min((ctx.stmt.limit or MAX_LIMIT) + ctx.stmt.offset, MAX_LIMIT)  # OFFSET cuts after
    return list(itertools.islice((p for p in out if p[0] >= first), bound))


def _raw_points(ids: list[int], start: int, end: int) -> Iterator[tuple[int, float]]:
    """Numeric readings of several fields merged in time order, streamed in pages."""
    streams = [query.iter_numbers(i, start, end) for i in ids]
    return streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda p: p[0])


def _aggregate(call: Call, ctx: _Context, lead: int) -> list[tuple[int, Any]]:
    """One aggregate or selector of a field: a point per bucket (filled) with GROUP BY time(),
    else at most one point (top/bottom: up to their count; distinct: one per value)."""
    every = ctx.stmt.every
    arg = call.args[0]
    field = (
        arg.args[0].name if isinstance(arg, Call) and isinstance(arg.args[0], FieldRef) else _field_of(arg)
    )
    ids = ctx.ids(field)
    if every is None:
        plan = whole(ctx.start, ctx.end)
        start = ctx.start
    else:
        start = ctx.start - lead * every  # InfluxDB moves the window's start back by whole intervals
        plan = buckets_plan(start, ctx.end, every, **_grid(ctx.stmt, ctx.zone))
    points = _aggregate_points(call, ids, start, ctx.end, plan, ctx) if ids else []
    if call.name in ("top", "bottom", "distinct"):
        return points
    if every is None:
        return [(ts, v) for ts, v in points if v is not None]
    starts = plan.output_starts(start, ctx.end, [ts for ts, _ in points], descending=ctx.stmt.descending)
    found = dict(points)
    values = [found.get(ts) for ts in starts]
    if ctx.stmt.descending:  # filled in the order asked for: previous and linear look at later buckets
        backwards = filled(starts[::-1], values[::-1], ctx.stmt.fill, count=call.name == "count")
        return list(zip(starts, backwards[::-1], strict=True))
    return list(zip(starts, filled(starts, values, ctx.stmt.fill, count=call.name == "count"), strict=True))


def _field_of(arg: Expr) -> str:
    assert isinstance(arg, FieldRef)  # the parser checks every call's first argument
    return arg.name


def _aggregate_points(
    call: Call, ids: list[int], start: int, end: int, plan: Plan, ctx: _Context
) -> list[tuple[int, Any]]:
    """(time, value) per non-empty bucket of one call over the fields ``ids``; times are bucket
    starts, or for a selector without GROUP BY time() the selected point's time."""
    name = call.name
    whole_window = ctx.stmt.every is None
    distinct_count = name == "count" and isinstance(call.args[0], Call)
    if (name in FUNCTIONS or name == "spread") and not distinct_count:
        return _rollup_points(call, ids, start, end, ctx, plan)
    if name in ("median", "percentile", "top", "bottom"):
        kind = "median" if name == "median" else name
        param = call.args[1].value if len(call.args) > 1 and isinstance(call.args[1], Number) else 0.0
        chosen = query.ranked(ids, start, end, plan, kind, param)
        if name == "median":
            middles: dict[int, list[float]] = {}
            for row in chosen:
                middles.setdefault(row.key, []).append(row.value)
            return [
                (plan.start_of(k), m[0] if len(m) == 1 else median(m[0], m[1])) for k, m in middles.items()
            ]
        if name == "percentile":
            return [(r.ts if whole_window else plan.start_of(r.key), r.value) for r in chosen]
        return sorted((r.ts, r.value) for r in chosen)[:MAX_LIMIT]
    if name == "mode":
        return [(plan.start_of(k), v) for k, v in modes(query.value_runs(ids, start, end, plan))]
    if name == "count":  # count(distinct(f))
        rows = query.grouped(ids, start, end, plan, "count_distinct")
        return [(plan.start_of(int(b)), value) for b, value in rows]
    if name == "distinct":
        rows = query.grouped(ids, start, end, plan, "distinct")
        at = ctx.default_time if whole_window else None
        return [(at if at is not None else plan.start_of(int(b)), value) for b, value, _ in rows]
    if name == "stddev":
        first = query.bucket_values(ids, start, end, plan)
        deviations = stddevs(first, query.bucket_values(ids, start, end, plan))
        return [(plan.start_of(k), v) for k, v in deviations.items()]
    unit = call.args[1].us if len(call.args) > 1 and isinstance(call.args[1], Duration) else SECOND
    window = None if whole_window else _window(plan)
    if len(ids) == 1:  # one series: its rollup slots carry their inner trapezoids
        slots = (
            (t0, v0, t1, v1, area)
            for _, _, t0, v0, t1, v1, area in rollups.trapezoid_pieces(ids[0], start, end, plan)
        )
        return list(integral_of_slots(slots, unit, window))
    return list(integral(_raw_points(ids, start, end), unit, window))


def _window(plan: Plan) -> Any:
    def window(ts: int) -> tuple[int, int]:
        key = plan.key_of(ts)
        return plan.start_of(key), plan.start_of(key + 1)

    return window


def _rollup_points(
    call: Call, ids: list[int], start: int, end: int, ctx: _Context, plan: Plan
) -> list[tuple[int, Any]]:
    """mean, min, max, sum, count, first, last and spread from the rollups (as the plain path)."""
    field = _field_of(call.args[0])
    name = "max" if call.name == "spread" else call.name
    column = SelectColumn(field, name)
    if ctx.stmt.every is None:
        parts = [rollups.summary(i, start, end) for i in ids]
        value = _combine(column, parts)
        if value is None:
            return []
        if call.name == "spread":
            value = value - _combine(SelectColumn(field, "min"), parts)
        return [(_selector_time(call.name, parts, ids, start, end, value, ctx), value)]
    by_start: dict[int, list[Bucket | None]] = {}
    for i in ids:
        for b in rollups.buckets(i, start, end, ctx.stmt.every, **_grid(ctx.stmt, ctx.zone)):
            by_start.setdefault(b.start, []).append(b)
    points = []
    for ts, parts in by_start.items():
        value = _combine(column, parts)
        if call.name == "spread" and value is not None:
            value = value - _combine(SelectColumn(field, "min"), parts)
        points.append((_row_time(call.name, plan, ts, parts, value, ids), value))
    return points


def _selector_time(
    name: str, parts: list[Bucket | None], ids: list[int], start: int, end: int, value: float, ctx: _Context
) -> int:
    """The time of the point a selector picked over the whole window (else the window's start)."""
    if name in ("min", "max"):
        found = query.time_of_value(ids, start, end, value)
        return ctx.default_time if found is None else found
    if name in ("first", "last"):
        return _selected_at(name, parts)
    return ctx.default_time


def _raw_expr_table(
    stmt: Select, members: list[FieldSeries], epoch: str | None
) -> tuple[list[str], list[Any]]:
    """Raw rows of arithmetic over fields (``"a" * 2 + 1``, ``"a" + "b"``): one row per time and tag
    set where any field the columns read has a point, each column evaluated on that row."""
    exprs = [_column_expr(c) for c in stmt.columns]
    wanted = sorted({f for e in exprs for f in _expr_fields(e)})
    start = MIN_TS_US if stmt.start is None else stmt.start
    end = MAX_TS_US + 1 if stmt.end is None else stmt.end
    cap = min(MAX_LIMIT, MAX_CELLS // max(1, len(wanted) * len(members)))
    bound = max(1, min((stmt.limit or MAX_LIMIT) + stmt.offset, cap))
    table: dict[tuple[int, tuple[tuple[str, str], ...]], dict[str, float | None]] = {}
    for s in members:
        if s.name.key in wanted:
            for point in query.series(s.field_id, start, end, limit=bound, descending=stmt.descending):
                table.setdefault((point.ts, s.name.tags), {})[s.name.key] = point.value
    order = sorted(table, reverse=stmt.descending)[stmt.offset : bound]
    times = _times([ts for ts, _ in order], epoch, get_zone(stmt.tz))
    rows = [
        [time, *(_row_value(e, table[key]) for e in exprs)] for time, key in zip(times, order, strict=True)
    ]
    return column_names(stmt.columns), rows


def _expr_fields(expr: Expr) -> list[str]:
    if isinstance(expr, FieldRef):
        return [expr.name]
    if isinstance(expr, BinaryOp):
        return _expr_fields(expr.left) + _expr_fields(expr.right)
    return []


def _row_value(expr: Expr, row: dict[str, float | None]) -> float | None:
    if isinstance(expr, FieldRef):
        return row.get(expr.name)
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, BinaryOp):
        return arithmetic(expr.op, _row_value(expr.left, row), _row_value(expr.right, row))
    return None
