"""Read blocks: each hour of a field's readings packed into one row, so long raw reads are cheap.

A day of one-minute readings is 1,440 rows, and the driver spends about half
a microsecond turning each into a Python tuple: most of a 24-hour read. A
block holds one (field, hour) as packed arrays, and 24 of them decode in a
fraction of that time. Blocks are derived data, like the rollups, and kept
true by the same marks:

* every writer of readings marks each (field, hour) it touches
  (``store.mark_dirty_sql``);
* a rollup refresh (the first chart of a field, ``fieldstation rollups
  refresh``) repacks the marked hours in the same transaction as their
  rollups (:func:`rebuild`);
* :func:`read` takes the hours that are marked from the readings and every
  other hour from its block. An unmarked hour without a block holds no
  readings: migration 0005 marked every hour that had readings, and purges drop
  blocks with the rollups.

A block's times are not stored when its readings are evenly spaced (the usual
sensor on a timer): ``t0`` and ``step`` give them. Text readings keep their
text in ``readings``; the block holds NaN in their place (no stored number is
NaN: every way in refuses it).
"""

from __future__ import annotations

import heapq
import sys
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from fieldstation import db as database
from fieldstation.db import Dialect
from fieldstation.timeunits import HOUR

#: Blocks fetched per statement; a 24-hour read takes one page.
PAGE = 48
#: Reads asking for fewer rows (ThingSpeak's default 100, the latest few) stay one statement.
WORTHWHILE = 256
#: Readings fetched per statement while packing (six hours of one reading per second).
_PACK_SPAN = 6 * HOUR
_NAN = float("nan")
_SWAP = sys.byteorder != "little"

Pair = tuple[int, float | None]


@dataclass(frozen=True, slots=True)
class _Sql:
    marks_asc: str
    marks_desc: str
    blocks_asc: str
    blocks_desc: str
    rows: str
    delete: str
    insert: str


def _statements(d: Dialect) -> _Sql:
    bind = d.bind

    blocks = (
        "SELECT ts, n, t0, step, texts, data FROM reading_blocks WHERE field_id = ? AND ts >= ? AND ts < ? "
    )
    raw = "SELECT ts, value FROM readings WHERE field_id = ? AND ts >= ? AND ts < ? ORDER BY ts "
    marks = (
        "SELECT ts, -1, 0, 0, 0, NULL FROM rollup_dirty WHERE field_id = ? AND ts >= ? AND ts < ? UNION ALL "
    )
    return _Sql(
        # Constants only; every value is a bound parameter.
        marks_asc=bind(f"{marks}SELECT * FROM ({blocks}ORDER BY ts LIMIT ?) b"),  # noqa: S608
        marks_desc=bind(f"{marks}SELECT * FROM ({blocks}ORDER BY ts DESC LIMIT ?) b"),  # noqa: S608
        blocks_asc=bind(blocks + "ORDER BY ts LIMIT ?"),
        blocks_desc=bind(blocks + "ORDER BY ts DESC LIMIT ?"),
        rows=bind(raw),
        delete=bind("DELETE FROM reading_blocks WHERE field_id = ? AND ts >= ? AND ts < ?"),
        insert=bind(
            "INSERT INTO reading_blocks (field_id, ts, n, t0, step, texts, data) VALUES (?, ?, ?, ?, ?, ?, ?)"
        ),
    )


_SQL = database.per_dialect(_statements)


# -- packing ----------------------------------------------------------------------------------


def pack(rows: list[Pair]) -> tuple[int, int, int, int, bytes]:
    """``(n, t0, step, texts, data)`` of one hour's readings, oldest first (at least one)."""
    stamps = [ts for ts, _ in rows]
    values = array("d", [_NAN if v is None else v for _, v in rows])
    texts = len(rows) - sum(1 for _, v in rows if v is not None)
    t0, n = stamps[0], len(stamps)
    step = stamps[1] - t0 if n > 1 else 1
    times = array("q")
    if step <= 0 or stamps != list(range(t0, t0 + n * step, step)):
        step, times = 0, array("q", stamps)
    if _SWAP:
        times.byteswap()
        values.byteswap()
    return n, t0, step, texts, times.tobytes() + values.tobytes()


def unpack(n: int, t0: int, step: int, data: bytes) -> tuple[range | array[int], array[float]]:
    """A block's times (a range when evenly spaced) and values (NaN for text readings)."""
    values = array("d")
    if step:
        times: range | array[int] = range(t0, t0 + n * step, step)
        values.frombytes(data)
    else:
        times = array("q")
        times.frombytes(data[: 8 * n])
        values.frombytes(data[8 * n :])
    if _SWAP:
        values.byteswap()
        if isinstance(times, array):
            times.byteswap()
    return times, values


def rebuild(cursor: Any, dialect: Dialect, field_id: int, lo: int, hi: int) -> None:
    """Repack the hours in ``[lo, hi)`` (whole hours) from the readings, in the caller's transaction."""
    sql = _SQL[dialect.name]
    cursor.execute(sql.delete, (field_id, lo, hi))
    for a in range(lo, hi, _PACK_SPAN):
        cursor.execute(sql.rows, (field_id, a, min(hi, a + _PACK_SPAN)))
        rows: list[Pair] = cursor.fetchall()
        packed = []
        start = 0
        while start < len(rows):
            hour = rows[start][0] - rows[start][0] % HOUR
            stop = bisect_left(rows, (hour + HOUR,), start)
            packed.append((field_id, hour, *pack(rows[start:stop])))
            start = stop
        if packed:
            cursor.executemany(sql.insert, packed)


# -- reading ----------------------------------------------------------------------------------


def read(
    cursor: Any, dialect: Dialect, raw: str, field_id: int, lo: int, hi: int, limit: int, descending: bool
) -> list[Pair]:
    """Readings of one field in ``[lo, hi)`` as ``(ts, value)`` in the order asked, at most ``limit``.

    Value is None for a text reading. Marked hours come from the readings, by the
    caller's range statement ``raw`` (field, from, to, limit; in the order asked),
    one per run of consecutive marked hours; the rest from their blocks, fetched
    a page at a time in the direction of travel until ``limit`` is met.
    """
    sql = _SQL[dialect.name]
    first = lo - lo % HOUR
    # The window's marks and the first page of blocks in one statement (marks have n = -1).
    cursor.execute(
        sql.marks_desc if descending else sql.marks_asc, (field_id, first, hi, field_id, first, hi, PAGE)
    )
    rows = cursor.fetchall()
    marked = sorted(row[0] for row in rows if row[1] < 0)
    page = sorted((row for row in rows if row[1] >= 0), key=_hour_of, reverse=descending)
    out: list[Pair] = []
    pieces = heapq.merge(
        _raw_runs(marked, lo, hi, descending),
        _clean_blocks(cursor, sql, field_id, (first, hi), descending, set(marked), page),
        key=_hour_of,
        reverse=descending,
    )
    for _, block, a, z in pieces:
        want = limit - len(out)
        if block is None:
            cursor.execute(raw, (field_id, a, z, want))
            out += cursor.fetchall()
        else:
            out += _decoded(block, lo, hi, descending, want)
        if len(out) >= limit:
            break
    return out


_Piece = tuple[int, Any, int, int]


def _hour_of(piece: _Piece) -> int:
    return piece[0]


def _raw_runs(marked: list[int], lo: int, hi: int, descending: bool) -> list[_Piece]:
    """Runs of consecutive marked hours as pieces read from the readings, clipped to the window."""
    runs: list[list[int]] = []
    for hour in marked:
        if runs and runs[-1][1] == hour:
            runs[-1][1] = hour + HOUR
        else:
            runs.append([hour, hour + HOUR])
    pieces = [(z - HOUR if descending else a, None, max(a, lo), min(z, hi)) for a, z in runs]
    return pieces[::-1] if descending else pieces


def _clean_blocks(
    cursor: Any,
    sql: _Sql,
    field_id: int,
    window: tuple[int, int],
    descending: bool,
    marked: set[int],
    rows: list[Any],
) -> Iterator[_Piece]:
    """Blocks of unmarked hours in ``window`` in the direction of travel, from the first page ``rows`` on."""
    a, z = window
    while True:
        for row in rows:
            if row[0] not in marked:
                yield row[0], row, 0, 0
        if len(rows) < PAGE:
            return
        if descending:
            z = rows[-1][0]
        else:
            a = rows[-1][0] + 1
        cursor.execute(sql.blocks_desc if descending else sql.blocks_asc, (field_id, a, z, PAGE))
        rows = cursor.fetchall()


def _decoded(block: Any, lo: int, hi: int, descending: bool, want: int) -> list[Pair]:
    """A block's readings in ``[lo, hi)``, at most ``want`` of them from the end of travel's start."""
    _, n, t0, step, texts, data = block
    times, values = unpack(n, t0, step, bytes(data))
    i = bisect_left(times, lo) if times[0] < lo else 0
    j = bisect_left(times, hi) if times[-1] >= hi else n
    if descending:
        i = max(i, j - want)
    else:
        j = min(j, i + want)
    numbers: list[Any] = values[i:j].tolist()
    if texts:
        numbers = [None if v != v else v for v in numbers]
    pairs = list(zip(times[i:j], numbers, strict=True))
    if descending:
        pairs.reverse()
    return pairs
