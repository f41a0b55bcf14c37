"""Rollups: per-minute, per-hour and per-day aggregates that make long-range charts cheap.

A year of one-minute data is 525,600 readings; a 1,000-bucket chart over it
reads 8,760 hour rows instead. How they stay true:

* ``store.write`` calls :func:`mark_dirty` (one line): it upserts a mark per
  (field, hour) the batch touched, bumping a generation counter. Writes stay
  cheap: no aggregation on the ingest path.
* Before :func:`aggregate` reads a field's rollups it calls :func:`refresh`,
  which rebuilds the marked hours from the readings (minute rows from raw,
  hour rows from minute rows, day rows from hour rows) and clears each mark
  only if its generation is unchanged, so late data arriving meanwhile stays
  marked. ``fieldstation rollups refresh`` does the same for every field (a
  job for cron after bulk loads).
* :func:`aggregate` picks the coarsest rollup whose slots fit the buckets,
  reads the window's aligned interior from it and the ragged ends from the
  next finer level, down to the raw readings.

A refresh also repacks the marked hours' read blocks (:mod:`fieldstation.blocks`),
which long raw reads take instead of the readings.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import click
from flask.cli import with_appcontext
from sqlalchemy import Table, text
from sqlalchemy.dialects import postgresql, sqlite

from fieldstation import blocks
from fieldstation.extensions import db
from fieldstation.models import RollupDirty

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, scoped_session

    from fieldstation.query import Partial, _Plan

MINUTE = 60_000_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
#: A multiple of a day larger than any |ts|: integer division then floors on both engines.
_SHIFT = 2_208_988_800_000_000 + DAY
#: (slot width, table), finest first. Table names are constants, never input.
LEVELS: tuple[tuple[int, str], ...] = ((MINUTE, "rollup_minute"), (HOUR, "rollup_hour"), (DAY, "rollup_day"))
#: Most dirty hours one refresh statement covers, so a refresh after a bulk load stays bounded.
_RUN_HOURS = 24 * 31


def mark_dirty(session: Session | scoped_session[Any], readings: Iterable[Mapping[str, Any]]) -> None:
    """Mark the (field, hour) slots of freshly written readings stale, in the writer's transaction."""
    hours = sorted({(r["field_id"], r["ts"] // HOUR * HOUR) for r in readings})
    if not hours:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    table: Table = RollupDirty.__table__  # type: ignore[assignment]
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=[table.c.field_id, table.c.ts], set_={"gen": table.c.gen + 1}
    )
    session.execute(stmt, [{"field_id": f, "ts": h, "gen": 1} for f, h in hours])


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
    mark_dirty(session, [{"field_id": field_id, "ts": cutoff}])


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
    if session.get_bind().dialect.name == "postgresql":
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
    for (width, table), (a, z) in zip(LEVELS, spans, strict=True):
        params = {"f": field_id, "a": a, "z": z, "w": width, "s": _SHIFT}
        db.session.execute(
            text(f"DELETE FROM {table} WHERE field_id = :f AND ts >= :a AND ts < :z"),  # noqa: S608
            params,
        )
        db.session.execute(text(_insert_sql(table, source)), params)
        source = table
    connection = db.session.connection()
    cursor = connection.connection.cursor()
    try:
        blocks.rebuild(cursor, connection.dialect.name, field_id, lo, hi)
    finally:
        cursor.close()


def _insert_sql(table: str, source: str) -> str:
    """INSERT … SELECT of one level's slots from the finer level (or the readings).

    A slot of one reading stores only its sum, which is the reading (min, max,
    first and last are NULL and read as the sum): a sensor writing once a minute
    or slower makes one minute slot per reading, and full rows made the minute
    rollup twice the size of the readings.
    """
    from fieldstation.query import sum_sql

    slot = "((ts + :s) / :w) * :w - :s"
    if source == "readings":
        n, total, lo, hi, first, last = (
            "count(value)",
            sum_sql("value"),
            "min(value)",
            "max(value)",
            "rf.value",
            "rl.value",
        )
        where = " AND value IS NOT NULL"
    else:
        n, total, lo, hi = "sum(n)", sum_sql("sum"), f"min({_MIN})", f"max({_MAX})"
        first, last = "coalesce(rf.first, rf.sum)", "coalesce(rl.last, rl.sum)"
        where = ""
    single = "g.n = 1 AND g.s = g.lo"  # the sum is the reading, bit for bit
    return (
        f"WITH g AS (SELECT {slot} AS b, {n} AS n, {total} AS s, {lo} AS lo, {hi} AS hi,"  # noqa: S608
        f" min(ts) AS t0, max(ts) AS t1 FROM {source} WHERE field_id = :f AND ts >= :a AND ts < :z{where}"
        " GROUP BY 1)"
        f" INSERT INTO {table} (field_id, ts, n, sum, min, max, first, last)"
        f" SELECT :f, g.b, g.n, g.s, CASE WHEN {single} THEN NULL ELSE g.lo END,"
        f" CASE WHEN {single} THEN NULL ELSE g.hi END, CASE WHEN {single} THEN NULL ELSE {first} END,"
        f" CASE WHEN {single} THEN NULL ELSE {last} END FROM g"
        f" JOIN {source} rf ON rf.field_id = :f AND rf.ts = g.t0"
        f" JOIN {source} rl ON rl.field_id = :f AND rl.ts = g.t1"
    )


#: A slot's min and max (NULL in a slot of one reading, whose sum is the reading).
_MIN, _MAX = "coalesce(min, sum)", "coalesce(max, sum)"


# -- reading ----------------------------------------------------------------------------------


def aggregate(field_id: int, start: int, end: int, plan: _Plan) -> dict[int, Partial]:
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


def _pieces(field_id: int, start: int, end: int, plan: _Plan, level: int) -> list[tuple[int, Partial]]:
    """Partials in time order: finer levels for the ragged ends, this level for the aligned middle."""
    from fieldstation.query import raw_partials

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


def level_partials(table: str, field_id: int, start: int, end: int, plan: _Plan) -> list[tuple[int, Partial]]:
    """Bucket partials from one rollup table (its slots lie wholly inside one bucket each)."""
    from fieldstation.query import Partial, sum_sql

    params: dict[str, Any] = {"f": field_id, "a": start, "z": end}
    key = plan.key_sql("ts", params)
    rows = db.session.execute(
        text(
            f"WITH g AS (SELECT {key} AS b, sum(n) AS n, {sum_sql('sum')} AS s, min({_MIN}) AS lo,"  # noqa: S608
            f" max({_MAX}) AS hi, min(ts) AS t0, max(ts) AS t1"
            f" FROM {table} WHERE field_id = :f AND ts >= :a AND ts < :z GROUP BY 1)"
            f" SELECT g.b, g.n, g.s, g.lo, g.hi, coalesce(rf.first, rf.sum), coalesce(rl.last, rl.sum) FROM g"
            f" JOIN {table} rf ON rf.field_id = :f AND rf.ts = g.t0"
            f" JOIN {table} rl ON rl.field_id = :f AND rl.ts = g.t1"
            " ORDER BY g.b"
        ),
        params,
    ).all()
    return [(int(b), Partial(int(n), float(s), lo, hi, first, last)) for b, n, s, lo, hi, first, last in rows]


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
    db.session.execute(
        text(
            "INSERT INTO rollup_dirty (field_id, ts, gen) SELECT DISTINCT field_id,"
            " ((ts + :s) / :h) * :h - :s, 1 FROM readings WHERE true"
            " ON CONFLICT (field_id, ts) DO UPDATE SET gen = rollup_dirty.gen + 1"
        ),
        {"s": _SHIFT, "h": HOUR},
    )
    db.session.commit()
    click.echo(f"rebuilt {refresh()} hours")
