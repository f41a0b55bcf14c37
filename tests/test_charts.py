"""The pure chart module: tick choice, gaps, bands and accessibility, without a database."""

from __future__ import annotations

import datetime as dt
import html
import json
import math
import re
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldstation import charts
from fieldstation.charts import ChartSeries, Frame, Sample
from fieldstation.timeunits import DAY, HOUR, MINUTE, US

T0 = 1_795_000_000 * US  # 2026-11-18
ZONES = [dt.UTC, ZoneInfo("Europe/Berlin"), ZoneInfo("America/New_York"), ZoneInfo("Asia/Kolkata")]


@dataclass(frozen=True)
class FakeBucket:
    start: int
    count: int
    avg: float | None
    min: float | None
    max: float | None


def sample(ts: int, value: float = 1.0, count: int = 1) -> Sample:
    return Sample(ts, value, value, value, count)


# -- value ticks -----------------------------------------------------------------------------


@given(
    low=st.floats(-1e9, 1e9, allow_nan=False),
    span=st.floats(0, 1e9, allow_nan=False),
    max_ticks=st.integers(2, 12),
)
def test_value_ticks_cover_the_data_with_few_distinct_labels(low: float, span: float, max_ticks: int) -> None:
    high = low + span
    bottom, top, ticks = charts.value_ticks(low, high, max_ticks)
    assert bottom <= low and top >= high
    assert 2 <= len(ticks) <= max_ticks + 1
    assert ticks[0].at == bottom and ticks[-1].at == top
    labels = [t.label for t in ticks]
    assert len(set(labels)) == len(labels), labels
    assert all(b.at > a.at for a, b in zip(ticks, ticks[1:], strict=False))


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (3.2, 12.1, ["2", "4", "6", "8", "10", "12", "14"]),
        (0, 2800, ["0", "500", "1000", "1500", "2000", "2500", "3000"]),
        (-0.3, 0.25, ["-0.3", "-0.2", "-0.1", "0", "0.1", "0.2", "0.3"]),
        (20.0, 20.0, ["18", "19", "20", "21", "22"]),
        (0, 1_500_000, ["0", "0.25M", "0.5M", "0.75M", "1M", "1.25M", "1.5M"]),
        (0, 40_000, ["0", "10k", "20k", "30k", "40k"]),
    ],
)
def test_value_ticks_are_round_numbers(low: float, high: float, expected: list[str]) -> None:
    assert [t.label for t in charts.value_ticks(low, high, 6)[2]] == expected


def test_nice_steps_are_one_two_two_and_a_half_or_five_times_a_power_of_ten() -> None:
    assert charts.nice_step(10, 5) == 2
    assert charts.nice_step(0.9, 4) == 0.25
    assert charts.nice_step(7000, 6) == 2000


#: Any finite float: subnormals such as 5e-324 and magnitudes up to the largest float included.
_any_value = st.floats(allow_nan=False, allow_infinity=False)


def _assert_readable_axis(low: float, high: float, max_ticks: int) -> None:
    """What a reader checks of a value axis: few ticks, in order, around the data, each label its own."""
    bottom, top, ticks = charts.value_ticks(low, high, max_ticks)
    assert 2 <= len(ticks) <= max_ticks + 1  # max_ticks steps between them, each VALUE_LABEL_PX tall
    assert all(b.at > a.at for a, b in zip(ticks, ticks[1:], strict=False))
    assert ticks[0].at == bottom <= min(low, high) and ticks[-1].at == top >= max(low, high)
    assert math.isfinite(bottom) and math.isfinite(top)
    labels = [t.label for t in ticks]
    assert len(set(labels)) == len(labels), labels


@given(low=_any_value, high=_any_value, max_ticks=st.integers(2, 40))
def test_value_ticks_hold_for_any_finite_floats(low: float, high: float, max_ticks: int) -> None:
    """Subnormal lows once gave one tick too many, ±1.7e308 never returned (#5)."""
    _assert_readable_axis(low, high, max_ticks)


@given(
    low=st.floats(-1e6, 1e6),
    relative=st.floats(1e-11, 1e-6),
    max_ticks=st.integers(2, 40),
)
def test_value_ticks_label_tiny_spans_distinctly(low: float, relative: float, max_ticks: int) -> None:
    """Spans just above float noise (0 to 2e-12) once got twelve decimals and equal labels (#5)."""
    _assert_readable_axis(low, low + max(abs(low), 1e-3) * relative, max_ticks)


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (-5e-324, 12.0, ["-2.5", "0", "2.5", "5.0", "7.5", "10.0", "12.5"]),
        (0, 2e-12, ["0", "5e-13", "1e-12", "1.5e-12", "2e-12"]),
        (0, 4e15, ["0", "1e15", "2e15", "3e15", "4e15"]),
    ],
)
def test_value_ticks_found_by_hypothesis(low: float, high: float, expected: list[str]) -> None:
    """Regressions of #5: a subnormal low, steps below 10^-12 and magnitudes beyond the G scale."""
    assert [t.label for t in charts.value_ticks(low, high, 6)[2]] == expected


# -- time ticks ------------------------------------------------------------------------------


@given(
    start=st.integers(T0 - 400 * DAY, T0 + 400 * DAY),
    span=st.integers(10 * US, 3 * 365 * DAY),
    width=st.integers(240, 2000),
    zone=st.sampled_from(ZONES),
)
def test_time_ticks_fit_the_width_and_sit_inside_the_window(
    start: int, span: int, width: int, zone: dt.tzinfo
) -> None:
    max_ticks = width // charts.TIME_LABEL_PX
    ticks = charts.time_ticks(start, start + span, zone, max_ticks)
    assert len(ticks) <= max(max_ticks, 1) + 1  # both ends of the window may hold one
    assert all(start <= t.at <= start + span for t in ticks)
    assert all(b.at > a.at for a, b in zip(ticks, ticks[1:], strict=False))
    # Neighbouring labels never overlap: the widest label ("Nov 30") is about 40 px; ticks are
    # at least 5/6 of TIME_LABEL_PX apart even where a DST change shortens a 6-hour step.
    pixels = [t.at / span * width for t in ticks]
    assert all(b - a >= charts.TIME_LABEL_PX * 5 / 6 - 1 for a, b in zip(pixels, pixels[1:], strict=False))


def test_time_ticks_fall_on_round_local_times() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    day = charts.time_ticks(T0, T0 + DAY, berlin, 8)
    assert [t.label for t in day][:3] == ["15:00", "18:00", "21:00"]
    assert "Nov 19" in [t.label for t in day]  # local midnight shows the date
    for tick in day:
        local = dt.datetime.fromtimestamp(tick.at / US, berlin)
        assert local.minute == 0 and local.hour % 3 == 0
    year = charts.time_ticks(T0, T0 + 365 * DAY, berlin, 6)
    assert [t.label for t in year] == ["2027", "Apr", "Jul", "Oct"]
    hour = charts.time_ticks(T0, T0 + HOUR, dt.UTC, 6)
    assert [t.label for t in hour] == ["11:10", "11:20", "11:30", "11:40", "11:50", "12:00"]


def test_time_ticks_follow_daylight_saving_changes() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    start = int(dt.datetime(2026, 3, 28, 12, tzinfo=berlin).timestamp()) * US
    ticks = charts.time_ticks(start, start + 2 * DAY, berlin, 8)
    assert len(ticks) >= 7
    for tick in ticks:
        assert dt.datetime.fromtimestamp(tick.at / US, berlin).hour % 6 == 0
    # The night the clocks go forward, one 6-hour step of local time is 5 hours long.
    steps = {b.at - a.at for a, b in zip(ticks, ticks[1:], strict=False)}
    assert steps == {6 * HOUR, 5 * HOUR}


def test_month_ticks_in_a_month_view() -> None:
    ticks = charts.time_ticks(T0, T0 + 30 * DAY, dt.UTC, 5)
    assert [t.label for t in ticks] == ["Nov 23", "Nov 30", "Dec 7", "Dec 14"]  # Mondays


# -- gaps and samples ------------------------------------------------------------------------


@given(st.lists(st.integers(0, 10_000), min_size=0, max_size=60, unique=True), st.integers(1, 50))
def test_segments_keep_every_point_in_order_and_break_only_at_gaps(offsets: list[int], every: int) -> None:
    points = [sample(T0 + o * MINUTE) for o in sorted(offsets)]
    runs = charts.segments(points, every * MINUTE)
    assert [p for run in runs for p in run] == points
    limit = charts.gap_threshold(points, every * MINUTE)
    for run in runs:
        assert all(b.ts - a.ts <= limit for a, b in zip(run, run[1:], strict=False))
    for before, after in zip(runs, runs[1:], strict=False):
        assert after[0].ts - before[-1].ts > limit


def test_an_outage_breaks_the_line_but_sparse_data_does_not() -> None:
    every = MINUTE
    regular = [sample(T0 + i * 10 * MINUTE) for i in range(12)]  # every 10 min in 1-min buckets
    assert len(charts.segments(regular, every)) == 1
    outage = regular[:6] + [sample(p.ts + 3 * HOUR) for p in regular[6:]]
    assert [len(run) for run in charts.segments(outage, every)] == [6, 6]


def test_samples_skip_text_only_buckets_and_sit_mid_bucket() -> None:
    buckets = [FakeBucket(T0, 3, 2.0, 1.0, 3.0), FakeBucket(T0 + MINUTE, 0, None, None, None)]
    (only,) = charts.samples(buckets, MINUTE, T0, T0 + HOUR)
    assert only == Sample(T0 + 30 * US, 2.0, 1.0, 3.0, 3)


# -- rendering -------------------------------------------------------------------------------


def frame(width: int = 800) -> Frame:
    return Frame(T0, T0 + DAY, 60 * MINUTE, dt.UTC, width, 260)


def test_svg_has_title_description_band_and_gap() -> None:
    points = [Sample(T0 + h * HOUR, 10.0 + h, 9.0 + h, 11.0 + h, 60) for h in (1, 2, 3, 10, 11)]
    svg = charts.render([ChartSeries("temperature", "°C", points)], frame(), title="Temperature (°C)")
    assert '<title id="chart-t">Temperature (°C)</title>' in svg
    # The last bucket holds 60 readings: its average is not called the last reading.
    assert "temperature: 300 readings, lowest 10 °C, highest 22 °C, average of the last 1 h 21 °C." in svg
    assert 'role="img"' in svg
    assert svg.count("<polyline") == 2  # the gap from 03:00 to 10:00 splits the line
    assert svg.count('class="band"') == 2  # buckets of 60 readings show their min–max band


def test_single_readings_draw_no_band_and_lone_points_draw_dots() -> None:
    points = [sample(T0 + h * HOUR, 5.0 + h) for h in (1, 2, 3, 20)]
    svg = charts.render([ChartSeries("x", None, points)], frame(), title="x")
    assert 'class="band"' not in svg
    assert svg.count("<polyline") == 1 and svg.count("<circle") == 1
    assert "x: 4 readings, lowest 6, highest 25, last 25." in svg


def test_a_spike_in_an_averaged_bucket_shows_in_the_band_and_the_tooltip() -> None:
    """Two buckets a pixel: the spike's bucket is drawn over its whole width, outlined, up to the spike."""
    every = 90 * US  # a day in 960 buckets on a 480-pixel plot
    points = [Sample(T0 + i * every + every // 2, 20.0, 20.0, 20.0, 90) for i in range(960)]
    points[500] = Sample(points[500].ts, 20.8, 20.0, 90.0, 90)
    svg = charts.render(
        [ChartSeries("t", "°C", points)], Frame(T0, T0 + DAY, every, dt.UTC, 600, 260), title="t"
    )
    band = re.search(r'<polygon class="band" points="([^"]+)"[^>]*stroke-opacity', svg)
    assert band is not None
    corners = [tuple(map(float, xy.split(","))) for xy in band.group(1).split()]
    top = min(y for _, y in corners)
    at_top = sorted(x for x, y in corners if y == top)
    assert len(at_top) == 2 and at_top[1] - at_top[0] >= 0.4  # the bucket's own width, not a point
    hover = json.loads(html.unescape(re.search(r'data-hover="([^"]+)"', svg).group(1)))  # type: ignore[union-attr]
    spike = hover["series"][0]["points"][500]
    assert spike[2:] == [20.8, 20.0, 90.0]  # average, then the lowest and highest reading
    assert len(hover["series"][0]["points"][0]) == 3  # a flat bucket has no range to show


def test_two_axes_label_each_side_in_its_series_colour() -> None:
    watts = ChartSeries("power", "W", [sample(T0 + h * HOUR, 1000.0 + 100 * h) for h in range(24)])
    temp = ChartSeries(
        "temperature", "°C", [sample(T0 + h * HOUR, 20.0 + h / 10) for h in range(24)], right=True
    )
    svg = charts.render([watts, temp], frame(), title="power and temperature")
    left = re.findall(r'text-anchor="end" fill="(#[0-9a-f]+)">([^<]+)<', svg)
    right = re.findall(r'text-anchor="start" fill="(#[0-9a-f]+)">([^<]+)<', svg)
    assert {c for c, _ in left} == {charts.PALETTE[0]} and {c for c, _ in right} == {charts.PALETTE[1]}
    assert "3400" in {label for _, label in left} or "3500" in {label for _, label in left}
    assert any(label.startswith("2") for _, label in right)


def test_empty_chart_says_so() -> None:
    svg = charts.render([ChartSeries("x", None, [])], frame(), title="x")
    assert "No data in this range" in svg and "x: no data." in svg


def test_labels_are_escaped() -> None:
    svg = charts.render([ChartSeries("<b>&", "<u>", [sample(T0 + HOUR)])], frame(), title="<script>")
    assert "<script>" not in svg and "&lt;b&gt;&amp;" in svg


def test_value_ticks_cover_subnormal_values() -> None:
    """Regression: low / step underflowed to -0.0 and the domain missed a tiny negative low."""
    bottom, top, _ = charts.value_ticks(-5e-324, 2.0 - 5e-324, 2)
    assert bottom <= -5e-324
    assert top >= 2.0 - 5e-324


def test_values_near_the_largest_float_are_drawn() -> None:
    """±1.7e308 once never returned (a step of 1 over an infinite span) and overflowed y (#5)."""
    points = [sample(T0 + HOUR, -1.7e308), sample(T0 + 2 * HOUR, 1.7e308)]
    svg = charts.render([ChartSeries("x", None, points)], frame(), title="t")
    assert "nan" not in svg and "inf" not in svg
    labels = re.findall(r'text-anchor="end" fill="#3f3f46">([^<]*)<', svg)
    assert labels == ["-1.7e308", "-1.1e308", "-5.7e307", "0", "5.7e307", "1.1e308", "1.7e308"]
