"""Run parsed InfluxQL statements against channels: a database is a channel, a series is a field.

Databases are the channels the credentials may read, named by channel name
(or id). Measurements, tags and field keys come from the field names
(:mod:`fieldstation.seriesnames`). Every SELECT reads through
:mod:`fieldstation.query` with a row or bucket bound.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from fieldstation import query, rollups
from fieldstation.auth import KeyScope, key_scope
from fieldstation.buckets import Bucket, bucket_starts
from fieldstation.errors import BadRequest, FieldstationError, Unauthorized
from fieldstation.influxql import CreateDatabase, Select, SelectColumn, Show, Statement
from fieldstation.params import format_time, format_times
from fieldstation.points import get_zone
from fieldstation.query import MAX_LIMIT
from fieldstation.seriesnames import SeriesName, parse_field_name
from fieldstation.timeunits import HOUR, MAX_TS_US, MIN_TS_US, MINUTE, SECOND

#: Most values one raw SELECT returns (rows x columns x series).
MAX_CELLS = 1_000_000
EPOCH_US = {"h": HOUR, "m": MINUTE, "s": SECOND, "ms": 1000, "u": 1, "µ": 1}
_VALUE = {
    "mean": "avg",
    "min": "min",
    "max": "max",
    "sum": "sum",
    "count": "count",
    "first": "first",
    "last": "last",
}


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
    channel = databases.find(statement.database or database)
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
    every = [s.name for s in _series_of(channel)]
    if stmt.measurement is not None:
        every = [s for s in every if s.measurement == stmt.measurement]
    measurements = sorted({s.measurement for s in every})
    if stmt.what == "measurements":
        if not measurements:
            return []
        return [
            {"name": "measurements", "columns": ["name"], "values": [[m] for m in measurements[: stmt.limit]]}
        ]
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
            pairs = {(k, v) for s in members for k, v in s.tags if k in stmt.keys}
            rows = [[k, v] for k, v in sorted(pairs)]
            columns = ["key", "value"]
        if rows:
            result.append({"name": measurement, "columns": columns, "values": rows[: stmt.limit]})
    return result


# -- SELECT -----------------------------------------------------------------------------------


def _select(stmt: Select, channel: query.Database, epoch: str | None) -> list[dict[str, Any]]:
    matching = [
        s for s in _series_of(channel) if s.name.measurement == stmt.measurement and _passes(s.name, stmt)
    ]
    if not matching:
        return []
    # InfluxDB names a series' tags in key order and lists series in that order, whatever GROUP BY's.
    group_tags = sorted(set(stmt.group_tags))
    if group_tags == ["*"]:
        group_tags = sorted({k for s in matching for k, _ in s.name.tags})
    groups: dict[tuple[str, ...], list[FieldSeries]] = {}
    for s in matching:
        groups.setdefault(tuple(s.name.tag(t) for t in group_tags), []).append(s)
    output = []
    for values, members in sorted(groups.items(), reverse=stmt.descending):  # DESC orders series too
        if any(c.function for c in stmt.columns):
            columns, rows = _aggregate_rows(stmt, members)
            if stmt.limit is not None:
                rows = rows[: stmt.limit]
            table: list[Any] = [[_time(ts, epoch), *row] for ts, row in rows]
        else:
            columns, table = _raw_table(stmt, members, epoch)
        if not table:
            continue
        series: dict[str, Any] = {"name": stmt.measurement}
        if group_tags:
            series["tags"] = dict(zip(group_tags, values, strict=True))
        series["columns"] = ["time", *columns]
        series["values"] = table
        output.append(series)
    return output


def _passes(name: SeriesName, stmt: Select) -> bool:
    for condition in stmt.tags:
        equal = name.tag(condition.key) == condition.value
        if equal != (condition.op == "="):
            return False
    return True


def _time(ts: int, epoch: str | None) -> int | str:
    if epoch is None:
        return format_time(ts)
    if epoch == "ns":
        return ts * 1000
    return ts // EPOCH_US[epoch]


def _times(stamps: list[int], epoch: str | None) -> list[Any]:
    """:func:`_time` of every row at once."""
    if epoch is None:
        return format_times(stamps)
    if epoch == "ns":
        return [ts * 1000 for ts in stamps]
    unit = EPOCH_US[epoch]
    return stamps if unit == 1 else [ts // unit for ts in stamps]


def _raw_table(stmt: Select, members: list[FieldSeries], epoch: str | None) -> tuple[list[str], list[Any]]:
    """Raw values, one row ``[time, value, …]`` per timestamp in the order asked for, bounded by
    LIMIT (or MAX_LIMIT)."""
    keys = sorted({s.name.key for s in members}) if stmt.columns[0].field == "*" else None
    columns = [SelectColumn(k) for k in keys] if keys is not None else stmt.columns
    start = MIN_TS_US if stmt.start is None else stmt.start
    end = MAX_TS_US + 1 if stmt.end is None else stmt.end
    # At most MAX_CELLS values per statement, however many columns SELECT * names.
    bound = max(1, min(stmt.limit or MAX_LIMIT, MAX_LIMIT, MAX_CELLS // max(1, len(columns) * len(members))))
    names = [c.name for c in columns]
    wanted = [
        (index, s) for index, column in enumerate(columns) for s in members if s.name.key == column.field
    ]
    if len(columns) == 1 and len(wanted) == 1:
        # One series, as a Grafana panel asks: the driver's rows, in order, formatted at once.
        got = query.series_rows(wanted[0][1].field_id, start, end, limit=bound, descending=stmt.descending)
        texts = got.texts
        pairs: list[tuple[int, Any]] = got.pairs
        if texts:
            pairs = [(ts, v if v is not None else texts.get(ts)) for ts, v in pairs]
        unit = EPOCH_US.get(epoch or "")
        if unit is not None:  # epoch=ms, as Grafana asks: one pass, the driver's tuples serialise as arrays
            return names, pairs if unit == 1 else [(ts // unit, value) for ts, value in pairs]
        return names, list(zip(_times([ts for ts, _ in pairs], epoch), [v for _, v in pairs], strict=True))
    # A row per time and tag set, as InfluxDB answers: points of series that differ only by
    # tags are rows of their own even at the same time, fields of one series share a row.
    table: dict[tuple[int, tuple[tuple[str, str], ...]], list[Any]] = {}
    for index, s in wanted:
        for point in query.series(s.field_id, start, end, limit=bound, descending=stmt.descending):
            row = table.setdefault((point.ts, s.name.tags), [None] * len(columns))
            row[index] = point.value if point.value is not None else point.text
    order = sorted(table, reverse=stmt.descending)[:bound]
    times = _times([ts for ts, _ in order], epoch)
    return names, [[time, *table[key]] for time, key in zip(times, order, strict=True)]


def _aggregate_rows(
    stmt: Select, members: list[FieldSeries]
) -> tuple[list[str], list[tuple[int, list[Any]]]]:
    """One row per GROUP BY time() bucket (with fill), or one row over the whole window."""
    names = _column_names(stmt.columns)
    if stmt.every is None:
        start = MIN_TS_US if stmt.start is None else stmt.start
        end = MAX_TS_US + 1 if stmt.end is None else stmt.end
        cells = [
            _combine(c, [rollups.summary(s.field_id, start, end) for s in _fields_for(c, members)])
            for c in stmt.columns
        ]
        if all(cell is None for cell in cells):
            return names, []
        time = 0 if stmt.start is None else stmt.start
        if len(stmt.columns) == 1 and stmt.columns[0].function in ("first", "last"):
            time = _selected_time(stmt.columns[0], members, start, end, time)
        return names, [(time, cells)]
    if stmt.start is None:
        raise BadRequest("GROUP BY time() needs a lower time bound in WHERE (time > now() - 1h)")
    from fieldstation.timeunits import now_us

    end = now_us() + 1 if stmt.end is None else stmt.end
    zone = get_zone(stmt.tz)
    per_column: list[dict[int, Any]] = []
    for column in stmt.columns:
        by_start: dict[int, list[Bucket | None]] = {}
        for s in _fields_for(column, members):
            for b in rollups.buckets(s.field_id, stmt.start, end, stmt.every, tz=zone):
                by_start.setdefault(b.start, []).append(b)
        per_column.append({ts: _combine(column, parts) for ts, parts in by_start.items()})
    if not any(per_column):
        return names, []  # no point in the window: no series, whatever the fill
    starts = bucket_starts(stmt.start, end, stmt.every, tz=zone)
    rows = []
    previous: list[Any] = [None] * len(stmt.columns)
    # Filled in the order asked for: with ORDER BY time DESC, fill(previous) takes the later bucket.
    for ts in reversed(starts) if stmt.descending else starts:
        row = [values.get(ts) for values in per_column]
        if all(v is None for v in row) and stmt.fill == "none":
            continue
        for i, column in enumerate(stmt.columns):
            if row[i] is not None:
                continue
            if stmt.fill == "previous":
                row[i] = previous[i]
            elif isinstance(stmt.fill, float):
                # count() is an integer column: InfluxDB truncates the fill value to fit it.
                row[i] = int(stmt.fill) if column.function == "count" else stmt.fill
            elif column.function == "count":
                row[i] = 0
        previous = row
        rows.append((ts, row))
    return names, rows


def _selected_time(column: SelectColumn, members: list[FieldSeries], start: int, end: int, other: int) -> int:
    """The time of the point ``first()`` or ``last()`` selects, as InfluxDB answers a query whose one
    column is that selector (a single-stat panel shows its age); ``other`` when it cannot say.

    Aggregates count numbers only, so the selected point is the first or last numeric one.
    """
    series = _fields_for(column, members)
    if len(series) != 1:
        return other
    descending = column.function == "last"
    for point in query.series(series[0].field_id, start, end, limit=_SELECTED_PROBE, descending=descending):
        if point.value is not None:
            return point.ts
    return other


#: Readings looked at for the selected point's time (text readings are skipped over).
_SELECTED_PROBE = 100


def _column_names(columns: list[SelectColumn]) -> list[str]:
    """InfluxDB de-duplicates output names: mean, mean_1, …"""
    seen: dict[str, int] = {}
    names = []
    for column in columns:
        count = seen.get(column.name, 0)
        names.append(column.name if count == 0 else f"{column.name}_{count}")
        seen[column.name] = count + 1
    return names


def _fields_for(column: SelectColumn, members: list[FieldSeries]) -> list[FieldSeries]:
    return [s for s in members if s.name.key == column.field]


def _combine(column: SelectColumn, parts: list[Bucket | None]) -> Any:
    """One column's value from the buckets of one or more series (same time span)."""
    found = [p for p in parts if p is not None and p.count]
    if not found:
        return None
    function = column.function or "mean"
    if len(found) > 1 and function in ("first", "last"):
        raise BadRequest(f"{function}() over several series: add a tag filter or GROUP BY the tag")
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
    return getattr(found[0], _VALUE[function])
