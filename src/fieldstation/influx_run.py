"""Run parsed InfluxQL statements against channels: a database is a channel, a series is a field.

Databases are the channels the credentials may read, named by channel name
(or id). Measurements, tags and field keys come from the field names
(:mod:`fieldstation.seriesnames`). Every SELECT reads through
:mod:`fieldstation.query` with a row or bucket bound.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import or_, select

from fieldstation import query
from fieldstation.auth import find_key
from fieldstation.errors import BadRequest, FieldstationError, Unauthorized
from fieldstation.extensions import db
from fieldstation.influxql import Column, CreateDatabase, Select, Show, Statement
from fieldstation.models import Channel, KeyKind
from fieldstation.params import format_time
from fieldstation.points import MAX_TS_US, MIN_TS_US, get_zone
from fieldstation.query import MAX_LIMIT, Bucket
from fieldstation.seriesnames import SeriesName, parse_field_name

#: Most values one raw SELECT returns (rows x columns x series).
MAX_CELLS = 1_000_000
EPOCH_US = {"h": 3600 * 10**6, "m": 60 * 10**6, "s": 10**6, "ms": 1000, "u": 1, "µ": 1}
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
class Series:
    field_id: int
    name: SeriesName


def readable_channels(raw_key: str | None) -> list[Channel]:
    """Channels these credentials may read: their own first, then public ones.

    :raise Unauthorized: a key was given but is unknown or revoked.
    """
    own = None
    if raw_key:
        key = find_key(raw_key)
        if key is None:
            raise Unauthorized("authorization failed")
        own = Channel.owner_id == key.user_id if key.kind == KeyKind.USER else Channel.id == key.channel_id
    condition = Channel.public.is_(True) if own is None else or_(own, Channel.public.is_(True))
    channels = list(db.session.scalars(select(Channel).where(condition).order_by(Channel.id).limit(10_000)))
    if own is not None:
        mine = {c.id for c in db.session.scalars(select(Channel).where(own))}
        channels.sort(key=lambda c: c.id not in mine)
    return channels


def find_database(name: str, channels: Iterable[Channel]) -> Channel:
    """The readable channel called ``name`` (or with that id).

    :raise BadRequest: none matches (unknown and forbidden alike).
    """
    if not name:
        raise BadRequest("database name required")
    listed = list(channels)
    for channel in listed:
        if str(channel.id) == name:
            return channel
    for channel in listed:
        if channel.name == name:
            return channel
    raise BadRequest(f"database not found: {name}")


def run(statements: list[Statement], raw_key: str | None, database: str, epoch: str | None) -> dict[str, Any]:
    """InfluxDB's ``{"results": [...]}``; a failing statement reports its error in its own result."""
    if epoch is not None and epoch not in EPOCH_US and epoch != "ns":
        raise BadRequest(f"invalid epoch: {epoch[:10]}")
    channels = readable_channels(raw_key)
    results: list[dict[str, Any]] = []
    for number, statement in enumerate(statements):
        try:
            series = _run_one(statement, channels, database, epoch)
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
    statement: Statement, channels: list[Channel], database: str, epoch: str | None
) -> list[dict[str, Any]]:
    if isinstance(statement, CreateDatabase):
        find_database(statement.name, channels)  # exists and readable: nothing to create
        return []
    if isinstance(statement, Show):
        return _show(statement, channels, database)
    channel = find_database(statement.database or database, channels)
    return _select(statement, channel, epoch)


def _series_of(channel: Channel) -> list[Series]:
    return [Series(f.id, parse_field_name(f.name, channel.name)) for f in channel.fields]


# -- SHOW -------------------------------------------------------------------------------------


def _show(stmt: Show, channels: list[Channel], database: str) -> list[dict[str, Any]]:
    if stmt.what == "databases":
        names = list(dict.fromkeys(c.name for c in channels))
        return [{"name": "databases", "columns": ["name"], "values": [[n] for n in names[: stmt.limit]]}]
    if stmt.what == "retention policies":
        find_database(stmt.database or database, channels)
        return [
            {
                "columns": ["name", "duration", "shardGroupDuration", "replicaN", "default"],
                "values": [["autogen", "0s", "168h0m0s", 1, True]],
            }
        ]
    channel = find_database(stmt.database or database, channels)
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


def _select(stmt: Select, channel: Channel, epoch: str | None) -> list[dict[str, Any]]:
    matching = [
        s for s in _series_of(channel) if s.name.measurement == stmt.measurement and _passes(s.name, stmt)
    ]
    if not matching:
        return []
    group_tags = stmt.group_tags
    if group_tags == ["*"]:
        group_tags = sorted({k for s in matching for k, _ in s.name.tags})
    groups: dict[tuple[str, ...], list[Series]] = {}
    for s in matching:
        groups.setdefault(tuple(s.name.tag(t) for t in group_tags), []).append(s)
    output = []
    for values, members in sorted(groups.items()):
        if any(c.function for c in stmt.columns):
            columns, rows = _aggregate_rows(stmt, members)
        else:
            columns, rows = _raw_rows(stmt, members)
        if not rows:
            continue
        if stmt.descending:
            rows.reverse()
        if stmt.limit is not None:
            rows = rows[: stmt.limit]
        series: dict[str, Any] = {"name": stmt.measurement}
        if group_tags:
            series["tags"] = dict(zip(group_tags, values, strict=True))
        series["columns"] = ["time", *columns]
        series["values"] = [[_time(ts, epoch), *row] for ts, row in rows]
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


def _raw_rows(stmt: Select, members: list[Series]) -> tuple[list[str], list[tuple[int, list[Any]]]]:
    """Raw values, one row per timestamp, bounded by LIMIT (or MAX_LIMIT)."""
    keys = sorted({s.name.key for s in members}) if stmt.columns[0].field == "*" else None
    columns = [Column(k) for k in keys] if keys is not None else stmt.columns
    start = MIN_TS_US if stmt.start is None else stmt.start
    end = MAX_TS_US + 1 if stmt.end is None else stmt.end
    # At most MAX_CELLS values per statement, however many columns SELECT * names.
    bound = max(1, min(stmt.limit or MAX_LIMIT, MAX_LIMIT, MAX_CELLS // max(1, len(columns) * len(members))))
    table: dict[int, list[Any]] = {}
    for index, column in enumerate(columns):
        for s in members:
            if s.name.key != column.field:
                continue
            for point in query.series(s.field_id, start, end, limit=bound, descending=stmt.descending):
                row = table.setdefault(point.ts, [None] * len(columns))
                row[index] = point.value if point.value is not None else point.text
    stamps = sorted(table)
    if stmt.descending:
        stamps = stamps[-bound:]
    else:
        stamps = stamps[:bound]
    return [c.name for c in columns], [(ts, table[ts]) for ts in stamps]


def _aggregate_rows(stmt: Select, members: list[Series]) -> tuple[list[str], list[tuple[int, list[Any]]]]:
    """One row per GROUP BY time() bucket (with fill), or one row over the whole window."""
    names = _column_names(stmt.columns)
    if stmt.every is None:
        start = MIN_TS_US if stmt.start is None else stmt.start
        end = MAX_TS_US + 1 if stmt.end is None else stmt.end
        cells = [
            _combine(c, [query.summary(s.field_id, start, end) for s in _fields_for(c, members)])
            for c in stmt.columns
        ]
        if all(cell is None for cell in cells):
            return names, []
        return names, [(0 if stmt.start is None else stmt.start, cells)]
    if stmt.start is None:
        raise BadRequest("GROUP BY time() needs a lower time bound in WHERE (time > now() - 1h)")
    from fieldstation.points import now_us

    end = now_us() + 1 if stmt.end is None else stmt.end
    zone = get_zone(stmt.tz)
    per_column: list[dict[int, Any]] = []
    for column in stmt.columns:
        by_start: dict[int, list[Bucket | None]] = {}
        for s in _fields_for(column, members):
            for b in query.buckets(s.field_id, stmt.start, end, stmt.every, tz=zone):
                by_start.setdefault(b.start, []).append(b)
        per_column.append({ts: _combine(column, parts) for ts, parts in by_start.items()})
    starts = query.bucket_starts(stmt.start, end, stmt.every, tz=zone)
    rows = []
    previous: list[Any] = [None] * len(stmt.columns)
    for ts in starts:
        row = [values.get(ts) for values in per_column]
        if all(v is None for v in row) and stmt.fill == "none":
            continue
        for i, column in enumerate(stmt.columns):
            if row[i] is not None:
                continue
            if stmt.fill == "previous":
                row[i] = previous[i]
            elif isinstance(stmt.fill, float):
                row[i] = stmt.fill
            elif column.function == "count":
                row[i] = 0
        previous = row
        rows.append((ts, row))
    return names, rows


def _column_names(columns: list[Column]) -> list[str]:
    """InfluxDB de-duplicates output names: mean, mean_1, …"""
    seen: dict[str, int] = {}
    names = []
    for column in columns:
        count = seen.get(column.name, 0)
        names.append(column.name if count == 0 else f"{column.name}_{count}")
        seen[column.name] = count + 1
    return names


def _fields_for(column: Column, members: list[Series]) -> list[Series]:
    return [s for s in members if s.name.key == column.field]


def _combine(column: Column, parts: list[Bucket | None]) -> Any:
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
