"""Time buckets, and the per-minute, per-hour and per-day rollups that make long ones cheap.

:func:`buckets` and :func:`summary` answer every aggregate read but medians
(:mod:`fieldstation.query`). A year of one-minute data is 525,600 readings; a
1,000-bucket chart over it reads 8,760 hour rows instead. How they stay true:

* every writer of readings marks each (field, hour) it touched in its own
  transaction (``store.mark_dirty_sql``), bumping a generation counter. Writes
  stay cheap: no aggregation on the ingest path.
* Before :func:`aggregate` reads a field's rollups it calls :func:`refresh`,
  which rebuilds the marked hours from the readings (minute rows from raw,
  hour rows from minute rows, day rows from hour rows) and clears each mark
  only if its generation is unchanged, so late data arriving meanwhile stays
  marked. ``fieldstation rollups refresh`` does the same for every field (a
  job for cron after bulk loads).
* :func:`aggregate` picks the coarsest rollup whose slots fit the buckets
  (:meth:`fieldstation.buckets.Plan.aligned`), reads the window's aligned
  interior from it and the ragged ends from the next finer level, down to the
  raw readings.

A refresh also repacks the marked hours' read blocks (:mod:`fieldstation.blocks`),
which long raw reads take instead of the readings.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import re
from collections.abc import Iterable
from typing import Any

import click
from flask.cli import with_appcontext
from sqlalchemy import text
from sqlalchemy.orm import Session, scoped_session

from fieldstation import blocks
from fieldstation import db as database
from fieldstation.buckets import Bucket, Partial, Plan, check_window, plan, whole
from fieldstation.extensions import db
from fieldstation.store import mark_dirty_sql
from fieldstation.timeunits import DAY, FLOOR_SHIFT, HOUR, MINUTE, SECOND, slot_start, slot_start_sql

#: (slot width, table), finest first. Table names are constants, never input.
LEVELS: tuple[tuple[int, str], ...] = ((MINUTE, "rollup_minute"), (HOUR, "rollup_hour"), (DAY, "rollup_day"))
#: Most dirty hours one refresh statement covers, so a refresh after a bulk load stays bounded.
_RUN_HOURS = 24 * 31
_MARK = text(mark_dirty_sql("VALUES (:f, :t, 1)"))


# -- reading ----------------------------------------------------------------------------------


def buckets(
    field_id: int,
    start: int,
    end: int,
    every: int,
    *,
    tz: str | dt.tzinfo | None = None,
    origin: int = 0,
    local: bool = False,
) -> list[Bucket]:
    """Non-empty buckets of ``every`` µs over ``[start, end)``, oldest first.

    Widths under a day align to the epoch (UTC); whole-day widths align to
    local midnight in ``tz`` (DST-aware: such a bucket may be 23 or 25 hours).
    Partial buckets at the window's ends only hold the readings inside it. ``origin`` and ``local``
    move the edges as InfluxQL's ``GROUP BY time(d, origin)`` and ``tz()`` do (:meth:`Plan.make`).

    :raise BadRequest: reversed window, bad width or more than MAX_BUCKETS buckets.
    """
    planned = plan(start, end, every, tz, origin=origin, local=local)
    if end <= start:
        return []
    partials = aggregate(field_id, start, end, planned)
    return [planned.bucket(key, part) for key, part in partials.items()]


def summary(field_id: int, start: int, end: int) -> Bucket | None:
    """Aggregates of every numeric reading of one field in ``[start, end)`` (None when there are none)."""
    check_window(start, end)
    if end <= start:
        return None
    parts = list(aggregate(field_id, start, end, whole(start, end)).values())
    if not parts:
        return None
    total = parts[0]
    for part in parts[1:]:
        total = total.merge(part)
    return Bucket(
        start,
        total.count,
        total.sum / total.count,
        total.min,
        total.max,
        total.sum,
        total.first,
        total.last,
        total.first_at,
        total.last_at,
    )


# -- upkeep -----------------------------------------------------------------------------------


def mark_dirty(session: Session | scoped_session[Any], readings: Iterable[tuple[int, int]]) -> None:
    """Mark the (field, hour) slots of (field id, ts) readings stale, in the session's transaction."""
    hours = sorted({(field_id, slot_start(ts, HOUR)) for field_id, ts in readings})
    if hours:
        session.execute(_MARK, [{"f": f, "t": h} for f, h in hours])


def mark_field_dirty(session: Session | scoped_session[Any], field_id: int) -> None:
    """Mark every hour of one field that has readings stale (its integrals' gap changed)."""
    hours = slot_start_sql("ts", ":h", ":s")
    rows = f"SELECT DISTINCT field_id, {hours}, 1 FROM readings WHERE field_id = :f"  # noqa: S608
    session.execute(text(mark_dirty_sql(rows)), {"f": field_id, "s": FLOOR_SHIFT, "h": HOUR})


def forget_before(session: Session | scoped_session[Any], field_id: int, cutoff: int) -> None:
    """After readings before ``cutoff`` were purged: drop rollup slots and blocks that start before it.

    The hour holding ``cutoff`` is marked stale, so the next refresh rebuilds
    it — and its day — from what is left. It takes the refreshers' lock first: a
    refresh running meanwhile could otherwise put back slots of the purged time.
    """
    _lock_for_refresh(session, field_id)
    for table in (*(name for _, name in LEVELS), "reading_blocks"):
        session.execute(
            text(f"DELETE FROM {table} WHERE field_id = :f AND ts < :c"),  # noqa: S608
            {"f": field_id, "c": cutoff},
        )
    mark_dirty(session, [(field_id, cutoff)])


def refresh(field_id: int | None = None) -> int:
    """Rebuild the marked hours of one field (or of all fields); returns hours rebuilt.

    Each field is rebuilt and committed in a transaction of its own, so a refresh
    of every field after a bulk load holds no lock for long. Two charts of one
    field may refresh it at once: on PostgreSQL each refresher of a field first
    takes a transaction-scoped advisory lock on it, then reads its marks.
    Otherwise both would delete the old slots and both insert the new ones (a
    duplicate key), and one could clear a mark the other's writer had just set,
    leaving the rollup stale. Writers never take that lock. On SQLite the
    database's write lock already runs the rebuilds one after the other.
    """
    session = db.session
    where = "" if field_id is None else " WHERE field_id = :f"
    fields = session.execute(
        text(f"SELECT DISTINCT field_id FROM rollup_dirty{where} ORDER BY field_id"),  # noqa: S608
        {"f": field_id},
    ).scalars()
    return sum(_refresh_field(session, fid) for fid in list(fields))


def _refresh_field(session: Session | scoped_session[Any], field_id: int) -> int:
    """Rebuild one field's marked hours and clear the marks that did not change meanwhile; commit."""
    try:
        _lock_for_refresh(session, field_id)
        marks = session.execute(
            text("SELECT ts, gen FROM rollup_dirty WHERE field_id = :f ORDER BY ts"), {"f": field_id}
        ).all()
        if not marks:  # another refresher cleared them while this one waited
            session.rollback()
            return 0
        for lo, hi in _runs([ts for ts, _ in marks]):
            _rebuild(field_id, lo, hi)
        session.execute(
            text("DELETE FROM rollup_dirty WHERE field_id = :f AND ts = :t AND gen = :g"),
            [{"f": field_id, "t": t, "g": g} for t, g in marks],
        )
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return len(marks)


#: First key of the advisory locks that serialise refreshes (the second is the field id).
_REFRESH_LOCK = 0x726F6C6C  # "roll"


def _lock_for_refresh(session: Session | scoped_session[Any], field_id: int) -> None:
    if database.dialect().advisory_locks:
        session.execute(text("SELECT pg_advisory_xact_lock(:k, :f)"), {"k": _REFRESH_LOCK, "f": field_id})


def _runs(hours: list[int]) -> list[tuple[int, int]]:
    """Consecutive hours as [lo, hi) spans of at most _RUN_HOURS hours."""
    runs: list[tuple[int, int]] = []
    for hour in hours:
        if runs and runs[-1][1] == hour and (hour - runs[-1][0]) < _RUN_HOURS * HOUR:
            runs[-1] = (runs[-1][0], hour + HOUR)
        else:
            runs.append((hour, hour + HOUR))
    return runs


def _rebuild(field_id: int, lo: int, hi: int) -> None:
    """Recompute minute and hour rows in [lo, hi), the day rows of the days it touches, and the blocks."""
    day_lo, day_hi = lo // DAY * DAY, -(-hi // DAY) * DAY
    spans = ((lo, hi), (lo, hi), (day_lo, day_hi))
    source = "readings"
    gap = max_gap_us(field_id)
    for (width, table), (a, z) in zip(LEVELS, spans, strict=True):
        params = {"f": field_id, "a": a, "z": z, "w": width, "s": FLOOR_SHIFT, "gap": gap}
        db.session.execute(
            text(f"DELETE FROM {table} WHERE field_id = :f AND ts >= :a AND ts < :z"),  # noqa: S608
            params,
        )
        db.session.execute(text(_insert_sql(table, source)), params)
        source = table
    connection = db.session.connection()
    cursor = connection.connection.cursor()
    try:
        blocks.rebuild(cursor, database.dialect(), field_id, lo, hi)
    finally:
        cursor.close()


def max_gap_us(field_id: int) -> int:
    """The longest gap over which a reading of the field holds (its ``max_gap_s``), in µs."""
    found = db.session.execute(text("SELECT max_gap_s FROM fields WHERE id = :f"), {"f": field_id}).scalar()
    return int(found if found is not None else 3600) * SECOND


def _insert_sql(table: str, source: str) -> str:
    """INSERT … SELECT of one level's slots from the finer level (or the readings).

    A slot of one reading stores only its sum and its time, ``t0`` (min, max,
    first, last, ``t1``, ``area`` and ``rise`` are NULL and read as the sum, the
    time and zero): a sensor writing once a minute or slower makes one minute slot
    per reading, and full rows made the minute rollup twice the size of the readings.
    """
    single = "n = 1 AND s = lo"  # the sum is the reading, bit for bit
    chained = chain_sql(source, slot_start_sql("ts", ":w", ":s"))
    kept = ", ".join(
        f"CASE WHEN {single} THEN NULL ELSE {c} END"
        for c in ("lo", "hi", "v0", "v1", "t1", "area", "rise", "trap")
    )
    return (
        f"INSERT INTO {table} (field_id, ts, n, sum, min, max, first, last, t1, area, rise, trap, t0)"  # noqa: S608
        f" SELECT :f, b, n, s, {kept}, t0 FROM ({chained}) c"
    )


#: Power and counter values are held within ±1e200 in integrals and increases, so that no
#: product with a time or sum of them can leave the float range (PostgreSQL raises there).
CLAMP = 1e200


def _clamp(column: str) -> str:
    low, high = ("greatest", "least") if database.dialect().float_overflow_raises else ("max", "min")
    return f"{high}({low}({column}, -1e200), 1e200)"


def chain_sql(source: str, key: str) -> str:
    """Per group of ``key`` over ``source`` (the readings or a rollup table), in one statement.

    Columns: b (the key), n, s (sum), lo, hi, t0, t1 (first and last reading's time), v0, v1
    (their values), area (each reading held until the next one within the group when the gap
    is at most ``:gap`` µs, in value x µs), rise (the sum of rises, a drop counting from
    zero: Prometheus's increase() without extrapolation) and trap (trapezoids between successive
    readings within the group, whatever the gap: InfluxQL's integral()). Rows of a rollup chain like readings:
    their own area and rise, plus the step from the previous slot's last reading. Parameters:
    ``:f``, ``:a``, ``:z``, ``:gap`` and those of ``key``. ``source`` and ``key`` are built from
    constants of this package, never from input.
    """
    if source == "readings":
        cols = (
            "ts, 1 AS n, value AS s, value AS lo, value AS hi, ts AS t0, ts AS t1, value AS v0,"
            " value AS v1, CAST(0 AS DOUBLE PRECISION) AS area, CAST(0 AS DOUBLE PRECISION) AS rise,"
            " CAST(0 AS DOUBLE PRECISION) AS trap"
        )
        where = " AND value IS NOT NULL"
    else:
        cols = (
            f"ts, n, sum AS s, {_MIN} AS lo, {_MAX} AS hi, t0, coalesce(t1, t0) AS t1,"
            " coalesce(first, sum) AS v0, coalesce(last, sum) AS v1, coalesce(area, 0.0) AS area,"
            " coalesce(rise, 0.0) AS rise, coalesce(trap, 0.0) AS trap"
        )
        where = ""
    pv, v0 = _clamp("pv"), _clamp("v0")
    step_area = f"CASE WHEN pb = b AND t0 - pt <= :gap THEN {pv} * (t0 - pt) ELSE 0.0 END"
    step_rise = f"CASE WHEN pb = b THEN (CASE WHEN v0 >= pv THEN {v0} - {pv} ELSE {v0} END) ELSE 0.0 END"
    step_trap = f"CASE WHEN pb = b THEN 0.5 * ({pv} + {v0}) * (t0 - pt) ELSE 0.0 END"
    return (
        f"WITH r AS (SELECT {key} AS b, {cols} FROM {source}"  # noqa: S608
        f" WHERE field_id = :f AND ts >= :a AND ts < :z{where}),"
        " w AS (SELECT r.*, lag(b) OVER o AS pb, lag(t1) OVER o AS pt, lag(v1) OVER o AS pv,"
        " first_value(v0) OVER p AS fv, last_value(v1) OVER p AS lv FROM r"
        " WINDOW o AS (ORDER BY ts), p AS (PARTITION BY b ORDER BY ts"
        " ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING))"
        f" SELECT b, sum(n) AS n, {sum_sql('s')} AS s, min(lo) AS lo, max(hi) AS hi, min(t0) AS t0,"
        " max(t1) AS t1, min(fv) AS v0, min(lv) AS v1,"
        f" sum(area + {step_area}) AS area, sum(rise + {step_rise}) AS rise,"
        f" sum(trap + {step_trap}) AS trap FROM w GROUP BY b"
    )


#: A slot's min and max (NULL in a slot of one reading, whose sum is the reading).
_MIN, _MAX = "coalesce(min, sum)", "coalesce(max, sum)"


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
    if not database.dialect().float_overflow_raises:
        return f"coalesce(sum({column}), 0.0)"
    big = f"coalesce(sum(CASE WHEN abs({column}) >= {_TINY} THEN {column} * {_SCALE_DOWN} END), 0)"
    tiny = f"coalesce(sum(CASE WHEN abs({column}) < {_TINY} THEN {column} END), 0)"
    return (
        f"CASE WHEN {big} > {_SCALED_MAX} THEN 'Infinity'::float8 "
        f"WHEN {big} < -{_SCALED_MAX} THEN '-Infinity'::float8 ELSE {big} * {_SCALE_UP} + {tiny} END"
    )


def raw_partials(field_id: int, start: int, end: int, plan: Plan) -> list[tuple[int, Partial]]:
    """Bucket partials straight from the readings of one field (numeric values only)."""
    where = " AND value IS NOT NULL"
    return _partials(
        "readings",
        "value",
        "value",
        "rf.value",
        "rl.value",
        where,
        field_id,
        start,
        end,
        plan,
        at=("rf.ts", "rl.ts"),
    )


def aggregate(field_id: int, start: int, end: int, plan: Plan) -> dict[int, Partial]:
    """Partials by bucket key over ``[start, end)``, oldest first, from the coarsest fitting level."""
    usable = [i for i, (width, _) in enumerate(LEVELS) if plan.aligned(width)]
    level = usable[-1] if usable else -1
    if level >= 0 and _has_marks(field_id):
        refresh(field_id)
    merged: dict[int, Partial] = {}
    for key, part in _pieces(field_id, start, end, plan, level):
        before = merged.get(key)
        merged[key] = part if before is None else before.merge(part)
    return merged


def _has_marks(field_id: int) -> bool:
    return (
        db.session.execute(
            text("SELECT 1 FROM rollup_dirty WHERE field_id = :f LIMIT 1"), {"f": field_id}
        ).first()
        is not None
    )


def _pieces(field_id: int, start: int, end: int, plan: Plan, level: int) -> list[tuple[int, Partial]]:
    """Partials in time order: finer levels for the ragged ends, this level for the aligned middle."""
    if start >= end:
        return []
    if level < 0:
        return raw_partials(field_id, start, end, plan)
    width, table = LEVELS[level]
    a, z = -(-start // width) * width, end // width * width
    if a >= z:
        return _pieces(field_id, start, end, plan, level - 1)
    return (
        _pieces(field_id, start, a, plan, level - 1)
        + level_partials(table, field_id, a, z, plan)
        + _pieces(field_id, z, end, plan, level - 1)
    )


def level_partials(table: str, field_id: int, start: int, end: int, plan: Plan) -> list[tuple[int, Partial]]:
    """Bucket partials from one rollup table (its slots lie wholly inside one bucket each)."""
    first, last = "coalesce(rf.first, rf.sum)", "coalesce(rl.last, rl.sum)"
    at = ("rf.t0", "coalesce(rl.t1, rl.t0)")
    return _partials(
        table, "sum", _MIN, first, last, "", field_id, start, end, plan, counts="sum(n)", hi=_MAX, at=at
    )


def _partials(
    source: str,
    total: str,
    lo: str,
    first: str,
    last: str,
    where: str,
    field_id: int,
    start: int,
    end: int,
    plan: Plan,
    *,
    counts: str = "count(value)",
    hi: str | None = None,
    at: tuple[str, str],
) -> list[tuple[int, Partial]]:
    """Bucket partials of one field from ``source`` (the readings or a rollup table): one statement.

    ``source`` and the column expressions are constants of this module, never input.
    """
    params: dict[str, Any] = {"f": field_id, "a": start, "z": end}
    key = plan.key_sql("ts", params)
    rows = db.session.execute(
        text(
            f"WITH g AS (SELECT {key} AS b, {counts} AS n, {sum_sql(total)} AS s, min({lo}) AS lo,"  # noqa: S608
            f" max({hi or lo}) AS hi, min(ts) AS t0, max(ts) AS t1"
            f" FROM {source} WHERE field_id = :f AND ts >= :a AND ts < :z{where} GROUP BY 1)"
            f" SELECT g.b, g.n, g.s, g.lo, g.hi, {first}, {last}, {at[0]}, {at[1]} FROM g"
            f" JOIN {source} rf ON rf.field_id = :f AND rf.ts = g.t0"
            f" JOIN {source} rl ON rl.field_id = :f AND rl.ts = g.t1"
            " ORDER BY g.b"
        ),
        params,
    ).all()
    return [
        (int(b), Partial(int(n), float(s), lo, hi, first, last, int(t_first), int(t_last)))
        for b, n, s, lo, hi, first, last, t_first, t_last in rows
    ]


# -- integrals and increases (fieldstation.energy) -----------------------------------------


#: One slot (or reading) of a field for integrals and increases: bucket key, readings, time and
#: value of the first and the last reading, integral (value x µs) and increase within it.
Piece = tuple[int, int, int, float, int, float, float, float]


def chain_pieces(field_id: int, start: int, end: int, plan: Plan) -> list[Piece]:
    """The slots of ``[start, end)`` in time order: the coarsest fitting rollup for the aligned middle,
    finer levels for the ragged ends (as :func:`aggregate`), each slot within one bucket.

    Slots are not grouped here: the steps between them (and across bucket edges) are the
    caller's, which walks them in order (:func:`fieldstation.energy.totals`). A year of
    hour slots is 8,760 rows; grouped in SQL with window functions it cost four times
    as much on SQLite as the walk.
    """
    return _walked(field_id, start, end, plan, "energy")


#: One slot (or reading) of a field for InfluxQL's integral(): bucket key, readings, time and value
#: of the first and the last reading, and the trapezoid area between its readings (value x µs).
Trapezoids = tuple[int, int, int, float, int, float, float]


def trapezoid_pieces(field_id: int, start: int, end: int, plan: Plan) -> list[Trapezoids]:
    """The slots of ``[start, end)`` in time order, as :func:`chain_pieces` picks them, with their
    trapezoid areas: what InfluxQL's integral() needs besides the steps between slots."""
    return _walked(field_id, start, end, plan, "trapezoids")


def _walked(field_id: int, start: int, end: int, plan: Plan, kind: str) -> list[Any]:
    """The slots of ``[start, end)`` in time order, refreshed first, from the coarsest level that
    fits ``plan``; ``kind`` names their columns (:data:`_SLOT_COLUMNS`)."""
    usable = [i for i, (width, _) in enumerate(LEVELS) if plan.aligned(width)]
    level = usable[-1] if usable else -1
    if level >= 0:
        fresh(field_id)
    found = level_slots(field_id, spans(start, end, level), plan, kind)
    return merged(list(found.values()))


def fresh(field_id: int) -> None:
    """Rebuild the field's stale hours, if it has any, before its rollups are read."""
    if _has_marks(field_id):
        refresh(field_id)


#: A run of one level's slots: (index into :data:`LEVELS`, or -1 for the readings; start; end).
Span = tuple[int, int, int]


def spans(start: int, end: int, level: int) -> list[Span]:
    """``[start, end)`` as the coarsest slots up to ``level`` that fit, finer ones at the ragged ends."""
    if start >= end:
        return []
    if level < 0:
        return [(-1, start, end)]
    width = LEVELS[level][0]
    a, z = -(-start // width) * width, end // width * width
    if a >= z:
        return spans(start, end, level - 1)
    return [*spans(start, a, level - 1), (level, a, z), *spans(z, end, level - 1)]


def level_slots(field_id: int, runs: list[Span], plan: Plan, kind: str = "energy") -> dict[int, list[Piece]]:
    """The slots (or readings) of every run, by level, each level in time order: one statement a level."""
    by_level: dict[int, list[tuple[int, int]]] = {}
    for level, a, z in sorted(runs, key=lambda run: run[1]):
        ranges = by_level.setdefault(level, [])
        if ranges and ranges[-1][1] == a:  # adjacent runs of one level: one index range
            ranges[-1] = (ranges[-1][0], z)
        else:
            ranges.append((a, z))
    return {
        level: _slots(LEVELS[level][1] if level >= 0 else "readings", field_id, ranges, plan, kind)
        for level, ranges in by_level.items()
    }


def merged(runs: list[list[Piece]]) -> list[Piece]:
    """Pieces of disjoint runs, each in time order, as one list in time order."""
    if len(runs) == 1:
        return runs[0]
    return sorted(itertools.chain.from_iterable(runs), key=_first_time)


def _first_time(piece: Piece) -> int:
    return piece[2]


_ZERO = "CAST(0 AS DOUBLE PRECISION)"
#: What a slot is to each walker, from the raw readings (a reading is a slot of one) and from a
#: rollup table: energy's Piece, or :data:`Trapezoids` (the same first six, then the trapezoids).
_SLOT_COLUMNS = {
    "energy": (
        f"1, r.ts, r.value, r.ts, r.value, {_ZERO}, {_ZERO}",
        "r.n, r.t0, coalesce(r.first, r.sum), coalesce(r.t1, r.t0), coalesce(r.last, r.sum),"
        " coalesce(r.area, 0.0), coalesce(r.rise, 0.0)",
    ),
    "trapezoids": (
        f"1, r.ts, r.value, r.ts, r.value, {_ZERO}",
        "r.n, r.t0, coalesce(r.first, r.sum), coalesce(r.t1, r.t0), coalesce(r.last, r.sum),"
        " coalesce(r.trap, 0.0)",
    ),
}


def _slots(
    source: str, field_id: int, ranges: list[tuple[int, int]], plan: Plan, kind: str = "energy"
) -> list[Any]:
    """The rows of ``source`` in the ``ranges`` (one range: a plain index range; more: a join)."""
    params: dict[str, Any] = {"f": field_id}
    key = plan.key_sql("r.ts", params)
    raw, rolled = _SLOT_COLUMNS[kind]
    cols, where = (raw, " AND r.value IS NOT NULL") if source == "readings" else (rolled, "")
    select = f"SELECT {key}, {cols} FROM"
    if len(ranges) == 1:
        params["a"], params["z"] = ranges[0]
        bounds = "r.field_id = :f AND r.ts >= :a AND r.ts < :z"
        return _fetch(f"{select} {source} r WHERE {bounds}{where} ORDER BY r.ts", params)
    # One index range per range: SQLite takes the CROSS JOIN's left side as the outer loop;
    # PostgreSQL needs LATERAL with OFFSET 0, else it flattens the subquery into a join that
    # reads the field's every slot (minute slots of a year: 103 ms against 1.3 ms).
    params["g"] = json.dumps(ranges)
    bounds = "r.field_id = :f AND r.ts >= g.a AND r.ts < g.z"
    inner = f"(SELECT * FROM {source} r WHERE {bounds} OFFSET 0) r"  # noqa: S608 (constants)
    return _fetch(
        {
            "postgresql": f"{select} {{pairs}} CROSS JOIN LATERAL {inner} WHERE TRUE{where} ORDER BY r.ts",
            "sqlite": f"{select} {{pairs}} CROSS JOIN {source} r WHERE {bounds}{where} ORDER BY r.ts",
        },
        params,
    )


def _fetch(sql: str | dict[str, str], params: dict[str, Any]) -> list[Any]:
    """Rows of a statement (or of one per engine, by name) written with ``:name`` parameters and
    ``{pairs}``, the ranges of ``:g``.

    On the driver's cursor: SQLAlchemy's rows cost half of a year of hour slots' read.
    """
    named = {}
    for name, dialect in database.DIALECTS.items():
        written = (sql if isinstance(sql, str) else sql[name]).replace("{pairs}", dialect.pairs("g"))
        named[name] = _NAMED.sub(r"%(\1)s", written) if name == "postgresql" else written
    with database.cursor(named, binary=True) as (cursor, statement):
        cursor.execute(statement, params)
        rows: list[Any] = cursor.fetchall()
    return rows


def edge_readings(
    field_id: int, ranges: list[tuple[int, int]], *, last: bool
) -> dict[int, tuple[int, float]]:
    """The last (or first) numeric reading of each range, by the range's start; one statement.

    What a day slot cannot tell: the reading just before (or after) a cut inside it. One
    index seek a range: PostgreSQL's LATERAL (a subquery per column cost four times as much
    there), SQLite's subquery with the ranges as the outer loop (joined, it scanned the
    field's readings for each).
    """
    if not ranges:
        return {}
    order = "DESC" if last else "ASC"
    nearest = (
        "SELECT r.ts, r.value FROM readings r WHERE r.field_id = :f AND r.ts >= g.a AND r.ts < g.z"  # noqa: S608
        f" AND r.value IS NOT NULL ORDER BY r.ts {order} LIMIT 1"
    )
    sql = {
        "postgresql": f"SELECT g.a, x.ts, x.value FROM {{pairs}} CROSS JOIN LATERAL ({nearest}) x",  # noqa: S608
        "sqlite": (
            f"SELECT x.a, x.t, v.value FROM (SELECT g.a, ({nearest.replace('r.ts, r.value', 'r.ts', 1)})"  # noqa: S608
            " AS t FROM {pairs}) x CROSS JOIN readings v WHERE v.field_id = :f AND v.ts = x.t"
        ),
    }
    rows = _fetch(sql, {"f": field_id, "g": json.dumps(ranges)})
    return {int(a): (int(t), float(value)) for a, t, value in rows}


#: A bound parameter ``:name`` (sqlite3's style), rewritten as ``%(name)s`` for psycopg.
_NAMED = re.compile(r"(?<![:\w]):(\w+)")


def neighbours(
    field_id: int, start: int, end: int
) -> tuple[tuple[int, float] | None, tuple[int, float] | None]:
    """The last numeric reading before ``start`` and the first at or after ``end`` (time, value),
    in one statement (a round trip less on PostgreSQL)."""
    near = "SELECT ts, value FROM readings WHERE field_id = :f AND value IS NOT NULL AND "
    rows = db.session.execute(
        text(
            f"SELECT 0, ts, value FROM ({near}ts < :a ORDER BY ts DESC LIMIT 1) b"  # noqa: S608
            f" UNION ALL SELECT 1, ts, value FROM ({near}ts >= :z ORDER BY ts LIMIT 1) n"
        ),
        {"f": field_id, "a": start, "z": end},
    ).all()
    found: list[tuple[int, float] | None] = [None, None]
    for side, ts, value in rows:
        found[int(side)] = (int(ts), float(value))
    return found[0], found[1]


# -- CLI --------------------------------------------------------------------------------------


@click.group("rollups")
def rollups_group() -> None:
    """Maintain the per-minute/hour/day rollups behind long-range charts, and the read blocks."""


@rollups_group.command("refresh")
@with_appcontext
def refresh_command() -> None:
    """Rebuild every hour marked stale by writes: rollups and read blocks (after bulk loads, upgrades)."""
    click.echo(f"rebuilt {refresh()} stale hours")


@rollups_group.command("rebuild")
@with_appcontext
def rebuild_command() -> None:
    """Mark every hour that has readings stale, then rebuild all rollups from the readings."""
    # WHERE true: SQLite needs it to tell the upsert's ON CONFLICT from a join's ON.
    rows = f"SELECT DISTINCT field_id, {slot_start_sql('ts', ':h', ':s')}, 1 FROM readings WHERE true"  # noqa: S608
    db.session.execute(text(mark_dirty_sql(rows)), {"s": FLOOR_SHIFT, "h": HOUR})
    db.session.commit()
    click.echo(f"rebuilt {refresh()} hours")
