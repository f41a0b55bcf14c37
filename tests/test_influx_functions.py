"""influx_functions: InfluxQL's transformations, integral, mode, stddev and fill(linear), with property tests.

The answers InfluxDB itself gives are compared in test_influxql_functions_differential.py;
here each function is held to what it means (sums, lines, windows) over generated points.
"""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldstation.influx_functions import (
    arithmetic,
    cumulative_sum,
    derivative,
    difference,
    fill_linear,
    integral,
    integral_of_slots,
    linear,
    median,
    modes,
    moving_average,
    percentile_rank,
    stddevs,
)

values = st.floats(-1e6, 1e6, allow_nan=False)


@st.composite
def series(draw: st.DrawFn, min_size: int = 0) -> list[tuple[int, float]]:
    """Points at increasing times (µs), some steps long, some a microsecond."""
    steps = draw(st.lists(st.integers(1, 10**9), min_size=min_size, max_size=40))
    ts, points = draw(st.integers(0, 10**12)), []
    for step in steps:
        ts += step
        points.append((ts, draw(values)))
    return points


def close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6)


@given(series(), st.integers(1, 10**10))
def test_derivative_is_the_change_per_unit_between_neighbours(
    points: list[tuple[int, float]], unit: int
) -> None:
    out = list(derivative(points, unit))
    assert [ts for ts, _ in out] == [ts for ts, _ in points[1:]]
    for (t0, v0), (t1, v1), (_, rate) in zip(points, points[1:], out, strict=False):
        assert close(rate, (v1 - v0) / ((t1 - t0) / unit))
    kept = list(derivative(points, unit, non_negative=True))
    assert kept == [
        (ts, r) for (ts, r), (_, v0), (_, v1) in zip(out, points, points[1:], strict=False) if v1 >= v0
    ]


@given(series(min_size=1))
def test_differences_add_up_and_non_negative_drops_only_the_falls(points: list[tuple[int, float]]) -> None:
    steps = list(difference(points))
    assert close(sum(v for _, v in steps), points[-1][1] - points[0][1]) or len(points) > 20
    assert list(difference(points, non_negative=True)) == [(ts, v) for ts, v in steps if v >= 0]


def test_a_later_point_at_the_same_time_is_skipped_as_influxdb_does() -> None:
    points = [(0, 1.0), (60, 3.0), (60, 100.0), (120, 2.0)]
    assert list(difference(points)) == [(60, 2.0), (120, -1.0)]
    assert list(derivative(points, 60)) == [(60, 2.0), (120, -1.0)]


@given(series(min_size=1))
def test_cumulative_sum_ends_at_the_total(points: list[tuple[int, float]]) -> None:
    out = list(cumulative_sum(points))
    assert len(out) == len(points) and close(out[-1][1], math.fsum(v for _, v in points))


@given(series(), st.integers(2, 6))
def test_moving_average_is_each_windows_mean(points: list[tuple[int, float]], size: int) -> None:
    out = list(moving_average(points, size))
    assert len(out) == max(0, len(points) - size + 1)
    for i, (ts, mean) in enumerate(out):
        window = [v for _, v in points[i : i + size]]
        assert ts == points[i + size - 1][0]
        assert math.isclose(mean, statistics.fmean(window), rel_tol=1e-6, abs_tol=1e-3)


def trapezoids(points: list[tuple[int, float]], unit: int) -> float:
    return math.fsum(
        (a + b) / 2 * (t1 - t0) / unit for (t0, a), (t1, b) in zip(points, points[1:], strict=False)
    )


@given(series(min_size=1), st.integers(1, 10**9), st.integers(10**6, 10**10))
def test_integral_per_bucket_adds_up_to_the_whole(
    points: list[tuple[int, float]], unit: int, every: int
) -> None:
    """Trapezoids over everything (at time 0); per bucket, cut at the edges on the line between
    the points around each edge, so the buckets' areas add up to the whole area."""
    whole = list(integral(points, unit, None))
    assert len(whole) == 1 and whole[0][0] == 0
    assert math.isclose(whole[0][1], trapezoids(points, unit), rel_tol=1e-6, abs_tol=1e-3)
    cut = list(integral(points, unit, lambda ts: (ts // every * every, ts // every * every + every)))
    assert all(start % every == 0 for start, _ in cut)
    assert [s for s, _ in cut] == sorted({s for s, _ in cut})
    assert math.isclose(math.fsum(v for _, v in cut), whole[0][1], rel_tol=1e-6, abs_tol=1e-2)


@given(series(min_size=1), st.integers(10**6, 10**10), st.data())
def test_integral_of_slots_equals_the_integral_of_their_points(
    points: list[tuple[int, float]], every: int, data: st.DataObject
) -> None:
    """Runs of successive points inside one bucket, each given as a slot with its inner trapezoids
    (as a rollup slot keeps them), integrate as their points do."""
    window = lambda ts: (ts // every * every, ts // every * every + every)  # noqa: E731
    slots, run = [], [points[0]]
    for point in points[1:]:
        if window(point[0]) == window(run[0][0]) and data.draw(st.booleans()):
            run.append(point)
        else:
            slots.append(run)
            run = [point]
    slots.append(run)
    as_slots = [(r[0][0], r[0][1], r[-1][0], r[-1][1], trapezoids(r, 1)) for r in slots]
    for cut in (None, window):
        got = list(integral_of_slots(as_slots, 60_000_000, cut))
        want = list(integral(points, 60_000_000, cut))
        assert [t for t, _ in got] == [t for t, _ in want]
        assert all(
            math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-6) for (_, a), (_, b) in zip(got, want, strict=True)
        )


def test_integral_interpolates_at_bucket_edges_as_influxdb_1_6() -> None:
    """Points 1, 3, 2, 7, 7 at 0, 60, 120, 300, 360 s, 2-minute buckets, unit 1 minute: InfluxDB's answer."""
    s = 1_000_000
    points = [(0, 1.0), (60 * s, 3.0), (120 * s, 2.0), (300 * s, 7.0), (360 * s, 7.0)]
    every = 120 * s
    out = list(integral(points, 60 * s, lambda ts: (ts // every * every, ts // every * every + every)))
    assert out == [(0, 4.5), (120 * s, 7.333333333333333), (240 * s, 13.166666666666666)]


@given(st.lists(st.one_of(st.none(), values), min_size=1, max_size=30))
def test_fill_linear_puts_empty_buckets_on_the_line(found: list[float | None]) -> None:
    times = [i * 60_000_000 for i in range(len(found))]
    filled = fill_linear(times, found)
    known = [i for i, v in enumerate(found) if v is not None]
    for i, value in enumerate(filled):
        if found[i] is not None:
            assert value == found[i]
        elif not known or i < known[0] or i > known[-1]:
            assert value is None
        else:
            a = max(k for k in known if k < i)
            b = min(k for k in known if k > i)
            between = sorted([found[a], found[b]])  # type: ignore[type-var]
            assert between[0] - 1e-6 <= value <= between[1] + 1e-6


def test_linear_works_in_nanoseconds_as_influxdb() -> None:
    assert linear(180, 120, 300, 2.0, 7.0) == 2 + 5 / 180_000.0 * 60_000.0


def influx_mode(points: list[tuple[int, float]]) -> float:
    """InfluxDB 1.6's FloatModeReduceSlice over points sorted stably by value (Go's sort under 13 points)."""
    a = sorted(points, key=lambda p: p[1])
    if len(a) == 1:
        return a[0][1]
    most_freq = curr_freq = 0
    curr_mode = most_mode = a[0][1]
    most_time = curr_time = a[0][0]
    for ts, value in a:
        if value != curr_mode:
            curr_freq, curr_mode, curr_time = 1, value, ts
            continue
        curr_freq += 1
        if most_freq > curr_freq or (most_freq == curr_freq and curr_time > most_time):
            continue
        most_freq, most_mode, most_time = curr_freq, value, ts
    return most_mode


@given(st.lists(st.tuples(st.integers(0, 100), st.integers(0, 4).map(float)), min_size=1, max_size=12))
def test_mode_follows_influxdbs_walk(raw: list[tuple[int, float]]) -> None:
    points = sorted({ts: v for ts, v in raw}.items())
    runs: dict[float, list[int]] = {}
    for ts, value in points:
        runs.setdefault(value, []).append(ts)
    rows = [(7, v, len(t), min(t), max(t)) for v, t in sorted(runs.items())]
    assert list(modes(rows)) == [(7, influx_mode(points))]


def test_mode_per_bucket_and_the_rank_of_a_percentile() -> None:
    rows = [(1, 2.0, 1, 0, 0), (1, 3.0, 2, 5, 9), (2, 1.0, 1, 20, 20)]
    assert list(modes(rows)) == [(1, 3.0), (2, 1.0)]
    assert [percentile_rank(5, p) for p in (0, 10, 50, 90, 100, 120, -5)] == [None, 0, 2, 4, 4, None, None]
    assert median(2.0, 3.0) == 2.5


@given(st.lists(st.tuples(st.integers(0, 3), values), min_size=1, max_size=40))
def test_stddev_is_the_sample_standard_deviation(raw: list[tuple[int, float]]) -> None:
    pairs = sorted(raw, key=lambda p: p[0])
    got = stddevs(iter(pairs), iter(pairs))
    for key in {k for k, _ in pairs}:
        members = [v for k, v in pairs if k == key]
        if len(members) < 2:
            assert got[key] is None
        else:
            assert math.isclose(got[key] or 0.0, statistics.stdev(members), rel_tol=1e-6, abs_tol=1e-6)


@pytest.mark.parametrize(
    ("op", "left", "right", "result"),
    [
        ("+", 1.0, 2.0, 3.0),
        ("-", 1.0, 2.0, -1.0),
        ("*", 3.0, 2.0, 6.0),
        ("/", 3.0, 2.0, 1.5),
        ("/", 3.0, 0.0, 0.0),
    ],
)
def test_arithmetic_as_influxdb_with_division_by_zero_zero(
    op: str, left: float, right: float, result: float
) -> None:
    assert arithmetic(op, left, right) == result
    assert arithmetic(op, None, right) is None and arithmetic(op, left, None) is None
