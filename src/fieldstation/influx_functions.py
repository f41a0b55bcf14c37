"""InfluxQL's functions over points and buckets, computed as InfluxDB 1.x computes them.

Pure: no Flask, no database. :mod:`fieldstation.influx_run` reads the points
(raw readings, or one value per ``GROUP BY time()`` bucket from the rollups and
:mod:`fieldstation.query`) and hands them here. Each function follows InfluxDB
1.6's reducer step by step, in the same order of floating-point operations, so
that the answers match bit for bit where the inputs do: transformations
(``derivative``, ``difference``, ``cumulative_sum``, ``moving_average``),
``integral`` (trapezoids, interpolated at bucket edges), ``median``,
``stddev``, ``fill(linear)`` and arithmetic (a division by zero is 0).
Points are ``(time in µs, value)``, oldest first; InfluxDB's own arithmetic on
times is in nanoseconds, which :func:`linear` keeps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator
from typing import Any

Point = tuple[int, float]
#: The bucket ``[start, end)`` a time falls in (for GROUP BY time()); None: one window for all.
Window = Callable[[int], tuple[int, int]]


def linear(window_ts: int, prev_ts: int, next_ts: int, prev: float, nxt: float) -> float:
    """The value at ``window_ts`` on the line through two points (InfluxDB's ``linearFloat``, in ns)."""
    slope = (nxt - prev) / float((next_ts - prev_ts) * 1000)
    return slope * float((window_ts - prev_ts) * 1000) + prev


def median(low: float, high: float) -> float:
    """The median of an even count from its middle two values, as InfluxDB writes it."""
    return low + (high - low) / 2


def percentile_rank(count: int, percentile: float) -> int | None:
    """The 0-based index of the ``percentile`` in ``count`` sorted values, or None (no value)."""
    index = int(math.floor(float(count) * percentile / 100.0 + 0.5)) - 1
    return index if 0 <= index < count else None


def stddevs(
    first: Iterable[tuple[int, float]], second: Iterable[tuple[int, float]]
) -> dict[int, float | None]:
    """Sample standard deviation per bucket key from two passes over the same (key, value) stream:
    InfluxDB's running mean, then the squared deviations. One value gives None.

    Written for a year of readings: the current key's state stays in locals between items.
    """
    means: dict[int, tuple[float, int]] = {}
    key, mean, count = None, 0.0, 0
    for k, value in first:
        if k != key:
            if key is not None:
                means[key] = (mean, count)
            key, (mean, count) = k, means.get(k, (0.0, 0))
        count += 1
        mean += (value - mean) / count
    if key is not None:
        means[key] = (mean, count)
    sums: dict[int, float] = {}
    key, mean, total = None, 0.0, 0.0
    for k, value in second:
        if k != key:
            if key is not None:
                sums[key] = total
            key, mean, total = k, means[k][0], sums.get(k, 0.0)
        deviation = value - mean
        total += deviation * deviation
    if key is not None:
        sums[key] = total
    return {k: math.sqrt(sums.get(k, 0.0) / (n - 1)) if n > 1 else None for k, (_, n) in means.items()}


def modes(runs: Iterable[tuple[int, float, int, int, int]]) -> Iterator[tuple[int, float]]:
    """The most frequent value per bucket key, from (key, value, count, first time, last time) runs
    in key then value order: InfluxDB's walk over a bucket's values sorted by value (each value's
    points in time order), where a later value of the same count (two or more: a value seen once
    is never weighed) wins when its first point is no later than the last point of the one ahead."""
    best: tuple[int, float, int, int] | None = None  # key, value, count, last time
    for key, value, count, first, last in runs:
        if best is not None and best[0] != key:
            yield best[0], best[1]
            best = None
        if best is None or count > best[2] or (count == best[2] > 1 and first <= best[3]):
            best = (key, value, count, last)
    if best is not None:
        yield best[0], best[1]


def _advancing(points: Iterable[Point]) -> Iterator[Point]:
    """Points whose time moves on: a later point at the time of the one before is dropped."""
    last: int | None = None
    for ts, value in points:
        if ts != last:
            last = ts
            yield ts, value


def derivative(points: Iterable[Point], unit: int, *, non_negative: bool = False) -> Iterator[Point]:
    """Change per ``unit`` µs between successive points, at the later one's time; ``non_negative``
    drops the steps whose value falls."""
    prev: Point | None = None
    for ts, value in _advancing(points):
        if prev is not None:
            diff = value - prev[1]
            rate = diff / (float(ts - prev[0]) / float(unit))
            if not (non_negative and diff < 0):
                yield ts, rate
        prev = (ts, value)


def difference(points: Iterable[Point], *, non_negative: bool = False) -> Iterator[Point]:
    """Value minus the previous point's value; ``non_negative`` drops a fall (a counter's reset)."""
    prev: float | None = None
    for ts, value in _advancing(points):
        if prev is not None:
            step = value - prev
            if not (non_negative and step < 0):
                yield ts, step
        prev = value


def cumulative_sum(points: Iterable[Point]) -> Iterator[Point]:
    total = 0.0
    for ts, value in points:
        total += value
        yield ts, total


def moving_average(points: Iterable[Point], size: int) -> Iterator[Point]:
    """Mean of the last ``size`` points at each point once ``size`` are seen; a running sum, as
    InfluxDB keeps it (the oldest value taken off, the newest added)."""
    window: list[float] = []
    total = 0.0
    pos = 0
    for ts, value in points:
        if len(window) < size:
            window.append(value)
        else:
            total -= window[pos]
            window[pos] = value
        total += value
        pos = (pos + 1) % size
        if len(window) == size:
            yield ts, total / size


def integral(points: Iterable[Point], unit: int, window: Window | None) -> Iterator[Point]:
    """Area under the points in value x ``unit``, by trapezoids, per bucket (at the bucket's start)
    or over everything (at time 0): :func:`integral_of_slots` of one-point slots."""
    return integral_of_slots(((ts, value, ts, value, 0.0) for ts, value in points), unit, window)


#: A run of successive readings inside one bucket: first time and value, last time and value, and
#: the trapezoid area between its readings (value x µs). A single reading is ``(t, v, t, v, 0.0)``.
Slot = tuple[int, float, int, float, float]


def integral_of_slots(slots: Iterable[Slot], unit: int, window: Window | None) -> Iterator[Point]:
    """Area under successive readings in value x ``unit``, by trapezoids, per bucket (at the bucket's
    start) or over everything (at time 0), given as slots (a rollup slot carries its inner area).

    As InfluxDB 1.x: where the next reading lies beyond the bucket's end, the value at the end is
    interpolated and the area up to it closes the bucket; the area from there to the next reading
    goes to that reading's bucket (however many empty buckets lie between). A bucket whose only
    reading is at its start has no area and no row. A slot lies inside one bucket.
    """
    prev: Point | None = None
    start = end = 0
    total = 0.0
    for ts, value, last_ts, last_value, area in slots:
        if prev is None:
            start, end = window(ts) if window else (0, 0)
        elif ts == prev[0]:
            pass
        else:
            if window is not None and ts >= end:
                if prev[0] != end:
                    edge = linear(end, prev[0], ts, prev[1], value)
                    total += 0.5 * (edge + prev[1]) * (float(end - prev[0]) / float(unit))
                    prev = (end, edge)
                yield start, total
                start, end = window(ts)
                total = 0.0
            total += 0.5 * (value + prev[1]) * (float(ts - prev[0]) / float(unit))
        total += area / unit
        prev = (last_ts, last_value)
    if prev is not None and prev[0] != start:
        yield start, total


def fill_linear(times: list[int], values: list[Any]) -> list[Any]:
    """Empty buckets between two with values get the value on the line between those two;
    empty buckets before the first or after the last value stay empty."""
    filled = list(values)
    known = [i for i, v in enumerate(values) if v is not None]
    for a, b in zip(known, known[1:], strict=False):
        for i in range(a + 1, b):
            filled[i] = linear(times[i], times[a], times[b], values[a], values[b])
    return filled


def filled(starts: list[int], values: list[Any], fill: str | float, *, count: bool) -> list[Any]:
    """fill() over one aggregate's buckets, in the order given; ``count``: the column is count()'s,
    which fills 0 under null and truncates fill values to integers, as InfluxDB."""
    if fill == "linear":
        interpolated = fill_linear(starts, values)
        return [int(v) if v is not None else None for v in interpolated] if count else interpolated
    if fill == "previous":
        out, previous = [], None
        for value in values:
            previous = value if value is not None else previous
            out.append(previous)
        return out
    if isinstance(fill, float):
        number = int(fill) if count else fill
        return [number if v is None else v for v in values]
    if fill == "null" and count:
        return [0 if v is None else v for v in values]
    return values


def arithmetic(op: str, left: float | None, right: float | None) -> float | None:
    """``left op right`` as InfluxDB evaluates it on floats: null if either is, x / 0 is 0."""
    if left is None or right is None:
        return None
    if op == "+":
        return left + right
    if op == "-":
        return left - right
    if op == "*":
        return left * right
    return left / right if right != 0 else 0.0
