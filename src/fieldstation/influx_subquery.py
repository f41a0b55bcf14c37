"""InfluxQL over a subquery (``SELECT … FROM (SELECT …) …``), as InfluxDB 1.6 answers it.

No database: :mod:`fieldstation.influx_run` runs the inner statement through the engine as
:func:`inner_statement` rewrites it (InfluxDB's ``newIteratorOptionsSubstatement``: the outer time
range narrows the inner's, the outer ``GROUP BY`` tags are added to the inner's, an inner aggregate
without ``GROUP BY time()`` takes the outer interval, ``fill(null)`` inside becomes ``fill(none)``)
and hands its answer, bounded, to :func:`evaluate`, which computes the outer statement on those
points in memory: raw columns, tags and arithmetic, or ``mean min max sum count first last`` per
outer bucket with fill, outer ``WHERE`` on the answer's tags and fields (``"mean" > 5``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fieldstation.buckets import MAX_BUCKETS, bucket_starts
from fieldstation.buckets import plan as buckets_plan
from fieldstation.errors import BadRequest
from fieldstation.influx_functions import arithmetic, filled
from fieldstation.influxql import (
    FUNCTIONS,
    SELECTORS,
    BinaryOp,
    Call,
    Expr,
    FieldRef,
    Number,
    Select,
    calls,
    column_names,
    expr_fields,
)
from fieldstation.query import MAX_LIMIT

Point = tuple[int, Any]


@dataclass(frozen=True, slots=True)
class Rows:
    """One series of the inner answer: measurement, tags, column names (without ``time``) and rows
    ``[time µs, value, …]``."""

    name: str
    tags: dict[str, str]
    columns: list[str]
    values: Sequence[Sequence[Any]]


@dataclass(frozen=True, slots=True)
class Output:
    """One series of the outer answer: measurement, the values of its GROUP BY tags, columns, rows."""

    name: str
    tags: tuple[str, ...]
    columns: list[str]
    rows: list[tuple[int, list[Any]]]


def inner_statement(outer: Select) -> Select:
    """The inner statement as InfluxDB 1.6 runs it for ``outer``.

    :raise BadRequest: what the outer statement asks that is not supported over a subquery.
    """
    inner = outer.subquery
    assert inner is not None
    if outer.slimit is not None or outer.soffset:
        raise BadRequest("SLIMIT and SOFFSET over a subquery are not supported")
    if "*" in outer.group_tags:
        raise BadRequest("GROUP BY * over a subquery is not supported")
    aggregate = inner.has_calls
    own = inner.every is not None or not aggregate
    return dataclasses.replace(
        inner,
        start=_bound(max, inner.start, outer.start),
        end=_bound(min, inner.end, outer.end),
        group_tags=inner.group_tags + [t for t in outer.group_tags if t not in inner.group_tags],
        every=inner.every if own else outer.every,
        origin=inner.origin if own else outer.origin,
        fill="none" if aggregate and inner.fill == "null" else inner.fill,
        descending=outer.descending,
    )


def _bound(pick: Callable[[int, int], int], a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else pick(a, b)


def evaluate(outer: Select, inner: list[Rows], zone: dt.tzinfo, now: int) -> list[Output]:
    """The outer statement's series over the inner answer, in InfluxDB's order (by measurement and
    GROUP BY tag values, reversed by ORDER BY time DESC), LIMIT and OFFSET applied per series."""
    group_tags = sorted(set(outer.group_tags))
    groups: dict[tuple[str, tuple[str, ...]], list[Rows]] = {}
    for series in inner:
        lookup = _tag_lookup(series.tags)
        if all(condition.holds(lookup) for condition in outer.tags):
            key = (series.name, tuple(series.tags.get(t, "") for t in group_tags))
            groups.setdefault(key, []).append(series)
    aggregate = outer.has_calls
    names = _column_names(outer, inner, group_tags)
    output = []
    for (name, values), members in sorted(groups.items(), key=lambda item: item[0], reverse=outer.descending):
        members = [_filtered(s, outer) for s in members]
        early = aggregate and _before_window(outer, members)
        if early and not outer.descending:
            break
        rows = _aggregated(outer, members, zone, now) if aggregate else _raw(outer, members, names)
        rows = rows[outer.offset : outer.offset + min(outer.limit or MAX_LIMIT, MAX_LIMIT)]
        if rows:
            output.append(Output(name, values, names, rows))
        if early:
            break
    return output


def _before_window(outer: Select, members: list[Rows]) -> bool:
    """Whether, without GROUP BY time(), a point the outer calls read lies before the window's start
    (an inner bucket that began earlier). InfluxDB 1.6's reducer then stops reading the answer
    there: forwards it answers no more series from this one on; backwards this series' row is
    of its points up to the window's start, and no series come after it."""
    if outer.every is not None or outer.start is None:
        return False
    exprs = _expressions(outer, [])
    wanted = {f for e in exprs for call in calls(e) for f in expr_fields(call)}
    start = outer.start
    for series in members:
        for i, column in enumerate(series.columns, 1):
            if column in wanted and any(
                row[0] < start and _number(row[i]) is not None for row in series.values
            ):
                return True
    return False


def _tag_lookup(tags: dict[str, str]) -> Callable[[str], str]:
    return lambda key: tags.get(key, "")


def _filtered(series: Rows, outer: Select) -> Rows:
    """The series' rows that pass the outer WHERE's field conditions (null and text never pass)."""
    if not outer.field_filters:
        return series
    checks = [
        (series.columns.index(f.key) + 1 if f.key in series.columns else None, f) for f in outer.field_filters
    ]
    kept = [row for row in series.values if all(i is not None and f.holds(row[i]) for i, f in checks)]
    return dataclasses.replace(series, values=kept)


def _column_names(outer: Select, inner: list[Rows], group_tags: list[str]) -> list[str]:
    """InfluxDB's output names: ``*`` is every column and tag key of the inner answer but the grouped
    tags, sorted; otherwise aliases or expression names, de-duplicated (``mean``, ``mean_1``)."""
    if outer.columns[0].field == "*" and outer.columns[0].expr is None:
        keys = {c for s in inner for c in s.columns} | {t for s in inner for t in s.tags}
        return sorted(keys - set(group_tags))
    return column_names(outer.columns)


def _expressions(outer: Select, names: list[str]) -> list[Expr]:
    if outer.columns[0].field == "*" and outer.columns[0].expr is None:
        return [FieldRef(n) for n in names]
    result: list[Expr] = []
    for c in outer.columns:
        if c.expr is not None:
            result.append(c.expr)
        elif c.function is not None:
            result.append(Call(c.function, (FieldRef(c.field),)))
        else:
            result.append(FieldRef(c.field))
    return result


# -- raw: the inner rows, a row each --------------------------------------------------------------


def _raw(outer: Select, members: list[Rows], names: list[str]) -> list[tuple[int, list[Any]]]:
    """A row per inner row of the group in time order (InfluxDB merges series at one time in no
    defined order); a row whose every field column is null is left out, as InfluxDB does. For an
    inner aggregate without GROUP BY time() the rows stay in the inner answer's order, series by
    series in tag order, as InfluxDB reads them (its selectors' point times and ORDER BY time DESC
    do not reorder them)."""
    exprs = _expressions(outer, names)
    rows: list[tuple[int, list[Any]]] = []
    bound = min((outer.limit or MAX_LIMIT) + outer.offset, MAX_LIMIT)
    whole = _whole_inner(outer)
    assert outer.subquery is not None
    # Tags as columns: those the inner statement groups by, not those the outer GROUP BY added to it.
    own = outer.subquery.group_tags
    if whole:  # in tag order, even under ORDER BY time DESC
        members = sorted(members, key=lambda s: (s.name, sorted(s.tags.items())))
    for series in members:
        index = {c: i + 1 for i, c in enumerate(series.columns)}
        tags = {k: v for k, v in series.tags.items() if k in own or "*" in own}
        reads_field = [any(f in index for f in expr_fields(e)) for e in exprs]
        for row in series.values:
            cells = [_row_value(e, row, index, tags) for e in exprs]
            if any(cell is not None and wanted for cell, wanted in zip(cells, reads_field, strict=True)):
                rows.append((row[0], cells))
    if not whole:
        rows.sort(key=lambda r: r[0], reverse=outer.descending)
    return rows[:bound]


def _whole_inner(outer: Select) -> bool:
    """Whether the inner statement is an aggregate without GROUP BY time(): a row per series."""
    inner = outer.subquery
    assert inner is not None
    return inner.every is None and inner.has_calls


def _row_value(expr: Expr, row: Sequence[Any], index: dict[str, int], tags: dict[str, str]) -> Any:
    """A raw column's value on one inner row: a column, else a tag of the row's series, else null."""
    if isinstance(expr, FieldRef):
        i = index.get(expr.name)
        return row[i] if i is not None else tags.get(expr.name)
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, BinaryOp):
        left = _row_value(expr.left, row, index, tags)
        right = _row_value(expr.right, row, index, tags)
        return arithmetic(expr.op, _number(left), _number(right))
    raise BadRequest("mixing aggregate and non-aggregate queries is not supported")


def _number(value: Any) -> float | None:
    return value if isinstance(value, int | float) and not isinstance(value, bool) else None


# -- aggregates: mean min max sum count first last of the inner answer's columns ------------------


def _aggregated(outer: Select, members: list[Rows], zone: dt.tzinfo, now: int) -> list[tuple[int, list[Any]]]:
    """A row per outer GROUP BY time() bucket (filled), or one over the whole window."""
    exprs = _expressions(outer, [])
    found = [call for e in exprs for call in calls(e)]
    for call in found:
        if call.name not in FUNCTIONS or not all(isinstance(a, FieldRef) for a in call.args):
            raise BadRequest(
                f"{call.name}() over a subquery is not supported (mean min max sum count first last)"
            )
    points = {f: _points(members, f) for call in found for f in expr_fields(call)}
    if outer.every is None:
        return _whole(outer, exprs, found, points)
    if outer.start is None:
        raise BadRequest("GROUP BY time() needs a lower time bound in WHERE (time > now() - 1h)")
    end = now + 1 if outer.end is None else outer.end
    # Where the buckets lie as influx_run's GROUP BY time() puts them (its _grid): offset, local time.
    plan = buckets_plan(outer.start, end, outer.every, zone, origin=outer.origin, local=True)
    starts = bucket_starts(outer.start, end, outer.every, tz=zone, origin=outer.origin, local=True)
    per_call: dict[Call, dict[int, Any]] = {}
    for call in found:
        buckets: dict[int, list[Point]] = {}
        for ts, value in points[expr_fields(call)[0]]:
            if ts < end:
                buckets.setdefault(plan.start_of(plan.key_of(ts)), []).append((ts, value))
        per_call[call] = {ts: got[1] for ts, group in buckets.items() if (got := _reduce(call.name, group))}
    if not any(per_call.values()):
        return []  # no point in the window: no series, whatever the fill
    order = starts[::-1] if outer.descending else starts
    known = sorted({ts for values in per_call.values() for ts in values}, reverse=outer.descending)
    times = known if outer.fill == "none" else _walk(order, known, outer.descending, outer.every)
    columns = {
        call: filled(times, [v.get(ts) for ts in times], outer.fill, count=call.name == "count")
        for call, v in per_call.items()
    }
    rows = []
    for i, ts in enumerate(times):
        cells = [_bucket_value(e, {call: values[i] for call, values in columns.items()}) for e in exprs]
        if outer.fill == "none" and all(cell is None for cell in cells):
            continue
        rows.append((ts, cells))
    return rows


def _walk(order: list[int], known: list[int], descending: bool, every: int) -> list[int]:
    """The rows' times as InfluxDB 1.6's fill iterator walks them: an expected time per bucket from
    the window's first, a bucket with points where it comes, a filled one where the next point is
    later; each row moves the expected time on by one interval, so a point before the window's
    first bucket (an inner bucket wider than the outer's) takes that bucket's turn, and, walking
    backwards, filled buckets go on past the window down to it.

    :raise BadRequest: more than MAX_BUCKETS rows.
    """
    times: list[int] = []
    step = -every if descending else every
    i = j = 0
    while i < len(known) or j < len(order):
        expected = order[j] if j < len(order) else order[-1] + step * (j - len(order) + 1)
        if i < len(known) and (known[i] >= expected if descending else known[i] <= expected):
            times.append(known[i])
            i += 1
        else:
            times.append(expected)
        j += 1
        if len(times) > MAX_BUCKETS:
            raise BadRequest(f"at most {MAX_BUCKETS} buckets per query; widen the interval")
    return times


def _whole(
    outer: Select, exprs: list[Expr], found: list[Call], points: dict[str, list[Point]]
) -> list[tuple[int, list[Any]]]:
    """One row over the whole window, at its start (0 without one), or at the selected point's time
    when the statement's one call is a selector; of the points from the window's start on
    (:func:`_before_window`)."""
    start = outer.start
    if start is not None:
        points = {f: [p for p in found_points if p[0] >= start] for f, found_points in points.items()}
    reduced = {call: _reduce(call.name, points[expr_fields(call)[0]]) for call in found}
    cells = [_bucket_value(e, {c: got[1] if got else None for c, got in reduced.items()}) for e in exprs]
    if all(cell is None for cell in cells):
        return []
    time = 0 if start is None else start
    if len(set(found)) == 1 and found[0].name in SELECTORS:  # InfluxDB computes a repeated call once
        got = reduced[found[0]]
        time = got[0] if got else time
    return [(time, cells)]


def _points(members: list[Rows], field: str) -> list[Point]:
    """The numbers of one column over the group's series, in time order (stable across series)."""
    merged: list[Point] = []
    for series in members:
        if field in series.columns:
            i = series.columns.index(field) + 1
            merged += [(row[0], row[i]) for row in series.values if _number(row[i]) is not None]
    merged.sort(key=lambda p: p[0])
    return merged


def _reduce(name: str, points: list[Point]) -> Point | None:
    """One aggregate of time-ordered points as InfluxDB's reducers compute it: (time, value), the
    time a selector's point's; None without points. Selectors' ties: min and max the earlier point,
    first and last the larger value."""
    if not points:
        return None
    if name == "count":
        return points[0][0], len(points)
    if name in ("sum", "mean"):
        total: float = 0
        for _, value in points:
            total += value
        return points[0][0], total if name == "sum" else total / len(points)
    best = points[0]
    for ts, value in points[1:]:
        if (
            (name == "min" and (value < best[1] or (value == best[1] and ts < best[0])))
            or (name == "max" and (value > best[1] or (value == best[1] and ts < best[0])))
            or (name == "first" and (ts < best[0] or (ts == best[0] and value > best[1])))
            or (name == "last" and (ts > best[0] or (ts == best[0] and value > best[1])))
        ):
            best = (ts, value)
    return best


def _bucket_value(expr: Expr, values: dict[Call, Any]) -> Any:
    if isinstance(expr, Call):
        return values.get(expr)
    if isinstance(expr, Number):
        return expr.value
    if isinstance(expr, BinaryOp):
        return arithmetic(expr.op, _bucket_value(expr.left, values), _bucket_value(expr.right, values))
    raise BadRequest("mixing aggregate and non-aggregate queries is not supported")
