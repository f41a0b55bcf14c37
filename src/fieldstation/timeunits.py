"""Time as Fieldstation stores it: integer microseconds since the Unix epoch, UTC. Pure.

Every module takes its units, bounds and conversions from here, so a width
or a bound is stated once. Bucket and slot boundaries use floor division on
timestamps shifted by :data:`FLOOR_SHIFT`: both SQL engines truncate integer
division toward zero, which is floor only for non-negative numbers, and the
shift makes every storable timestamp non-negative before dividing.
"""

from __future__ import annotations

import datetime as dt
import time

US = 1_000_000
SECOND = US
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR

#: Accepted timestamps: 1900-01-01 .. 2262-04-11 (the int64 nanosecond range).
MIN_TS_US = -2_208_988_800 * US
MAX_TS_US = 9_223_372_036_854_775_807 // 1000

#: A whole number of days larger than any storable |ts| (see the module docstring).
FLOOR_SHIFT = -MIN_TS_US + DAY

#: The "nice" bucket widths charts and ``every=auto`` choose from.
NICE_WIDTHS = [
    s * SECOND for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200)
] + [DAY, 2 * DAY, 7 * DAY, 30 * DAY]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def now_us() -> int:
    """Server time as integer microseconds since the epoch."""
    return time.time_ns() // 1000


def timedelta_to_us(delta: dt.timedelta) -> int:
    """A duration in µs, exact (no float rounding)."""
    return (delta.days * DAY // SECOND + delta.seconds) * US + delta.microseconds


def datetime_to_us(value: dt.datetime) -> int:
    """Aware datetime -> µs since the epoch, exact (no float rounding)."""
    return timedelta_to_us(value - _EPOCH)


def us_to_datetime(ts: int) -> dt.datetime:
    """µs since the epoch -> aware UTC datetime."""
    return _EPOCH + dt.timedelta(microseconds=ts)


def slot_start(ts: int, width: int) -> int:
    """Start of the epoch-aligned slot of ``width`` µs holding ``ts``; SQL twin: :func:`slot_start_sql`."""
    return ts // width * width


def slot_start_sql(ts: str, width: str, shift: str) -> str:
    """:func:`slot_start` as SQL: ``ts`` and ``width`` are expressions, ``shift`` binds :data:`FLOOR_SHIFT`.

    Shifted, the engines' truncating division is floor for every storable time.
    """
    return f"(({ts} + {shift}) / {width}) * {width} - {shift}"
