"""Time buckets planned: which bucket each timestamp falls in, for the queries of raw readings and rollups.

A :class:`Plan` maps a timestamp to a bucket key, in Python (:meth:`Plan.key_of`)
and as SQL (:meth:`Plan.key_sql`): widths under a day align to the epoch (UTC);
whole-day widths align to local midnight in a zone, DST included, from the
zone's offset steps inside the window (:func:`zone_offsets`). InfluxQL's plans
(``origin``, ``local``) move the edges by ``GROUP BY time(d, offset)`` and align
every width to local time, with InfluxDB's window arithmetic around DST changes. :class:`Partial`
aggregates of disjoint pieces merge into a :class:`Bucket`. Both
:mod:`fieldstation.query` (medians) and :mod:`fieldstation.rollups` (every other
aggregate) plan with this module; neither imports the other.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from fieldstation.errors import BadRequest
from fieldstation.points import get_zone
from fieldstation.timeunits import (
    DAY,
    FLOOR_SHIFT,
    MAX_TS_US,
    MIN_TS_US,
    NICE_WIDTHS,
    SECOND,
    datetime_to_us,
    timedelta_to_us,
    us_to_datetime,
)

#: Most buckets one call may produce (a chart needs ~1,000; exports page through rows instead).
MAX_BUCKETS = 100_000


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
    #: Times of the first and the last reading (InfluxQL's first()/last() pick among series by them).
    first_at: int = 0
    last_at: int = 0


@dataclass(frozen=True, slots=True)
class Partial:
    """Mergeable aggregates of part of a bucket."""

    count: int
    sum: float
    min: float
    max: float
    first: float
    last: float
    first_at: int = 0
    last_at: int = 0

    def merge(self, later: Partial) -> Partial:
        """Combine with the aggregates of a later, disjoint time range."""
        return Partial(
            self.count + later.count,
            self.sum + later.sum,
            min(self.min, later.min),
            max(self.max, later.max),
            self.first,
            later.last,
            self.first_at,
            later.last_at,
        )


@dataclass(frozen=True, slots=True)
class Plan:
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
    #: Where the buckets' edges lie past the epoch's (``GROUP BY time(d, origin)``); steps' times include it.
    origin: int = 0

    @classmethod
    def make(
        cls, start: int, end: int, every: int, zone: dt.tzinfo, *, origin: int = 0, local: bool = False
    ) -> Plan:
        """``origin`` moves the buckets' edges (InfluxQL's ``GROUP BY time(d, origin)``, |origin| <
        every): the zone is read at ``ts - origin``, as InfluxDB reads it. ``local`` aligns widths under
        a day to local time too (InfluxQL's ``tz()``); else they align to UTC."""
        # InfluxQL's buckets reach a width before the window, and its fill() reads the zone past it.
        reach = every if local else 0
        local = zone is not dt.UTC and (local or every % DAY == 0)
        steps = zone_offsets(zone, start - origin - reach, end + reach) if local else ()
        if all(off == 0 for _, off in steps):
            steps = ()
        if steps and every % DAY and len({off % every for _, off in steps}) == 1:
            # Every offset the same modulo the width (1h in Berlin, in Kolkata): InfluxDB's windows
            # never move at a change, so they are a fixed grid at the offset's phase (the hour autumn
            # repeats is two buckets, as there).
            origin, steps, local = origin - steps[0][1] % every, [], False
        shift = -(-(FLOOR_SHIFT + origin) // every) * every - origin
        moved = tuple((since + origin, off) for since, off in steps)
        return cls(every, shift, zone if local else None, moved, origin=origin)

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
        return (ts + _offset_at(self.offsets, ts) + self.shift) // self.every

    def aligned(self, width: int) -> bool:
        """Whether rows pre-aggregated into ``width``-wide epoch-aligned slots fall in one bucket each."""
        if self.single:
            return True
        if self.every % width or self.shift % width:
            return False
        return all(since % width == 0 and off % width == 0 for since, off in self.offsets[1:]) and all(
            off % width == 0 for _, off in self.offsets[:1]
        )

    def start_of(self, key: int) -> int:
        """UTC start of the bucket with this key."""
        local_start = key * self.every - self.shift
        if self.zone is None:
            return local_start
        wall = local_start - self.origin  # local time of the bucket's start before the origin is added
        if self.every % DAY == 0:
            return _midnight(wall // DAY, self.zone) + self.origin
        return self._local_to_utc(wall) + self.origin

    def _local_to_utc(self, wall: int) -> int:
        """The start of the bucket whose local start is ``wall`` (widths under a day), as InfluxDB's
        ``Window`` finds it from the bucket's first point: that point's offset, corrected by the offset
        at the instant found when the two differ by less than the width (a bucket that starts before a
        DST change). All in the frame before the origin is added."""
        steps = self.steps()
        chosen, earliest = steps[0][1] if steps else 0, None
        for i, (since, off) in enumerate(steps):
            lo = wall - off if i == 0 else max(wall - off, since)
            hi = wall + self.every - off
            if i + 1 < len(steps):
                hi = min(hi, steps[i + 1][0])
            if lo < hi and (earliest is None or lo < earliest):
                chosen, earliest = off, lo
        instant = wall - chosen
        there = _offset_at(steps, instant)
        if there != chosen and abs(chosen - there) < self.every:
            instant += chosen - there
        return instant

    @property
    def relabels(self) -> bool:
        """Whether InfluxDB may label a selector's row otherwise than its bucket: local buckets under a
        day whose span a DST change crosses (see :meth:`window_start`)."""
        return bool(self.offsets) and self.zone is not None and self.every % DAY != 0

    def window_start(self, ts: int) -> int:
        """InfluxDB's ``Window(ts)`` start for local buckets under a day: the floor of ``ts``'s local
        time by the width, moved by a change of the offset before it smaller than the width. InfluxDB
        labels a selector's row so, from the point it selected; inside a bucket that an autumn change
        cuts, that differs from the bucket's start (docs/decisions.md)."""
        steps = self.steps()
        t = ts - self.origin
        zone = _offset_at(steps, t)
        start = t - (t + zone) % self.every
        moved = zone - _offset_at(steps, start)
        if moved and abs(moved) < self.every:
            start += moved
        return start + self.origin

    def steps(self) -> list[tuple[int, int]]:
        """The zone's (from_ts, offset) steps at their real instants (:attr:`offsets` holds them moved
        by the origin, as the key compares them with ``ts`` where InfluxDB reads ``ts - origin``)."""
        return [(since - self.origin, off) for since, off in self.offsets]

    def output_starts(
        self, start: int, end: int, present: Iterable[int], *, descending: bool = False
    ) -> list[int]:
        """Bucket starts of ``[start, end)`` as InfluxDB's fill() lists them, oldest first: it steps from the
        first bucket by the width, moving a step by a change of the zone's offset smaller than the
        width (taken at the instant before the step), and lists each non-empty bucket (``present``)
        where it meets it. Without a zone's steps, every bucket start once."""
        keys = range(self.key_of(start), self.key_of(end - 1) + 1)
        if not self.offsets:
            return [self.start_of(k) for k in keys]
        first, last = self.start_of(keys[0]), self.start_of(keys[-1])
        steps = self.steps()
        step = -self.every if descending else self.every
        window, stop = (last, first) if descending else (first, last)
        offset = _offset_at(steps, window)
        out: list[int] = []
        for ts in sorted(present, reverse=descending):
            while (ts < window) if descending else (ts > window):
                out.append(window)
                window, offset = _stepped(window, step, offset, steps)
            out.append(ts)
            window, offset = _stepped(window, step, offset, steps)
        while (window >= stop) if descending else (window <= stop):
            out.append(window)
            window, offset = _stepped(window, step, offset, steps)
        return sorted(set(out))

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
            part.first_at,
            part.last_at,
        )


def _stepped(window: int, step: int, offset: int, steps: list[tuple[int, int]]) -> tuple[int, int]:
    """InfluxDB's fill iterator's next window and the offset it now holds."""
    window += step
    now = _offset_at(steps, window - 1)
    if now != offset:
        if abs(offset - now) < abs(step):
            window += offset - now
        offset = now
    return window, offset


def _offset_at(steps: Sequence[tuple[int, int]], ts: int) -> int:
    """The zone's offset at ``ts`` from (from_ts, offset) steps (the first step's before them)."""
    offset = steps[0][1] if steps else 0
    for since, off in steps:
        if ts >= since:
            offset = off
    return offset


@functools.lru_cache(maxsize=8192)
def _midnight(days: int, zone: dt.tzinfo) -> int:
    """UTC µs of local midnight ``days`` after 1970-01-01 in ``zone`` (a year of daily buckets asks
    for each day up to three times: cached, as zoneinfo's arithmetic is most of their cost)."""
    day = dt.date(1970, 1, 1) + dt.timedelta(days=days)
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=zone)
    # A local midnight skipped by DST: fold keeps zoneinfo's later offset; good enough.
    return datetime_to_us(midnight)


def zone_offsets(zone: dt.tzinfo, start: int, end: int) -> list[tuple[int, int]]:
    """(from_ts, utc offset in µs) for each offset step of ``zone`` within ``[start, end)``.

    Found by probing once a day and bisecting to the second where the offset changes.
    """

    def offset(ts: int) -> int:
        return timedelta_to_us(us_to_datetime(ts).astimezone(zone).utcoffset() or dt.timedelta(0))

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


def plan(
    start: int, end: int, every: int, tz: str | dt.tzinfo | None, *, origin: int = 0, local: bool = False
) -> Plan:
    """The plan of ``every``-wide buckets over ``[start, end)``, checked (``origin``, ``local``: as
    :meth:`Plan.make`).

    :raise BadRequest: reversed or out-of-range window, bad width or more than MAX_BUCKETS buckets.
    """
    check_window(start, end)
    if every < 1:
        raise BadRequest("bucket width must be positive", code="bad_every")
    if (end - start) // every > MAX_BUCKETS:
        raise BadRequest(f"at most {MAX_BUCKETS} buckets per query; widen 'every'", code="too_many_buckets")
    zone = tz if isinstance(tz, dt.tzinfo) else get_zone(tz)
    return Plan.make(start, end, every, zone, origin=origin, local=local)


def whole(start: int, end: int) -> Plan:
    """One bucket for all of ``[start, end)`` (a summary): any rollup level fits it."""
    every = end - start
    return Plan(every, -(-(FLOOR_SHIFT + start) // every) * every - start, None, (), single=True)


def auto_every(start: int, end: int, max_points: int) -> int:
    """The smallest "nice" width (1 s … 30 d) that gives at most ``max_points`` buckets."""
    if max_points < 1:
        raise BadRequest("max_points must be at least 1", code="bad_every")
    span = max(end - start, 1)
    for width in NICE_WIDTHS:
        if -(-span // width) <= max_points:
            return width
    return NICE_WIDTHS[-1]


def bucket_starts(
    start: int,
    end: int,
    every: int,
    *,
    tz: str | dt.tzinfo | None = None,
    origin: int = 0,
    local: bool = False,
) -> list[int]:
    """Start of every bucket that overlaps ``[start, end)``, empty or not (for InfluxQL's fill());
    ``origin`` and ``local`` as :meth:`Plan.make`.

    :raise BadRequest: more than MAX_BUCKETS buckets.
    """
    zone = tz if isinstance(tz, dt.tzinfo) else get_zone(tz)
    check_window(start, end)
    if every < 1 or (end - start) // every > MAX_BUCKETS:
        raise BadRequest(
            f"at most {MAX_BUCKETS} buckets per query; widen the interval", code="too_many_buckets"
        )
    if end <= start:
        return []
    plan = Plan.make(start, end, every, zone, origin=origin, local=local)
    first, last = plan.key_of(start), plan.key_of(end - 1)
    return [plan.start_of(k) for k in range(first, last + 1)]


def check_window(start: int, end: int) -> None:
    if start > end:
        raise BadRequest("start is after end", code="bad_range")
    if start < MIN_TS_US - DAY or end > MAX_TS_US + DAY:
        raise BadRequest("time range out of bounds", code="bad_range")
