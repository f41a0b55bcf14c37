"""SVG line charts drawn on the server from time buckets. Pure: no Flask, no database.

A chart gets at most about two buckets per horizontal pixel (the caller picks
the width with ``buckets.auto_every``), so a year of one-minute data costs what
an hour does. Each bucket becomes one sample: its average as the line, its
minimum and maximum as a shaded band when it aggregates more than one
reading. The line breaks where data is missing instead of bridging the gap.

Times are integer microseconds since the epoch (UTC); tick positions and
labels follow the viewer's time zone.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Protocol

from fieldstation.timeunits import DAY, HOUR, MINUTE, NICE_WIDTHS, SECOND, US, datetime_to_us, us_to_datetime

#: Pixels one time label needs (the widest, "Nov 30", is about 40 px at 11 px): labels never overlap.
TIME_LABEL_PX = 64
#: Pixels between value labels (11 px text plus air).
VALUE_LABEL_PX = 34
#: Buckets per horizontal pixel the caller should ask for (the issue: "about two").
POINTS_PER_PX = 2
PALETTE = ("#1f6fb2", "#c2410c", "#15803d", "#7e22ce", "#b91c1c", "#0f766e", "#a16207", "#4338ca")

#: Tick steps under a day: the bucket widths' "nice" steps.
_SUB_DAY_STEPS = [width for width in NICE_WIDTHS if width < DAY]
_DAY_STEPS = (1, 2, 3, 7, 14)
_MONTH_STEPS = (1, 2, 3, 6)
_YEAR_STEPS = (1, 2, 5, 10, 20, 50, 100)


class BucketLike(Protocol):
    """What a chart needs of ``buckets.Bucket``."""

    @property
    def start(self) -> int: ...
    @property
    def count(self) -> int: ...
    @property
    def avg(self) -> float | None: ...
    @property
    def min(self) -> float | None: ...
    @property
    def max(self) -> float | None: ...


@dataclass(frozen=True, slots=True)
class Sample:
    """One drawn point: a bucket's mid-time, average and range (and its median, when known)."""

    ts: int
    value: float
    low: float
    high: float
    count: int
    median: float | None = None


@dataclass(frozen=True, slots=True)
class Tick:
    """An axis tick: where it sits (µs or value) and its label."""

    at: float
    label: str


@dataclass(frozen=True, slots=True)
class ChartSeries:
    """One line: a field's samples, drawn against the left or the right axis."""

    label: str
    unit: str | None
    samples: Sequence[Sample]
    right: bool = False


@dataclass(frozen=True, slots=True)
class Frame:
    """Window, bucket width, zone and pixel size of a chart."""

    start: int
    end: int
    every: int
    zone: dt.tzinfo
    width: int = 800
    height: int = 260

    @property
    def zone_name(self) -> str:
        """IANA name of the zone (``UTC`` for the fixed UTC zone)."""
        return str(getattr(self.zone, "key", "UTC"))


def plot_width(width: int, *, two_axes: bool = False) -> int:
    """Pixels left for data once the axis labels have their room."""
    left, right = _margins(two_axes)
    return max(width - left - right, 40)


def _margins(two_axes: bool) -> tuple[int, int]:
    return 56, (56 if two_axes else 14)


# -- samples and gaps ------------------------------------------------------------------------


def samples(
    buckets: Iterable[BucketLike],
    every: int,
    start: int,
    end: int,
    medians: Mapping[int, float] | None = None,
) -> list[Sample]:
    """Buckets with numeric data as samples at their middle, clipped to ``[start, end)``;
    ``medians`` by bucket start, where known."""
    result = []
    for bucket in buckets:
        if bucket.count < 1 or bucket.avg is None:
            continue
        low = bucket.min if bucket.min is not None else bucket.avg
        high = bucket.max if bucket.max is not None else bucket.avg
        middle = min(max(bucket.start + every // 2, start), end - 1)
        median = medians.get(bucket.start) if medians else None
        result.append(Sample(middle, bucket.avg, low, high, bucket.count, median))
    return result


def gap_threshold(points: Sequence[Sample], every: int) -> int:
    """Distance beyond which two neighbours are drawn unconnected.

    Two buckets apart always connects; beyond that, sparse series (a reading
    every ten minutes drawn in one-minute buckets) connect up to 2.5 times
    their usual spacing, so only real outages show as gaps.
    """
    deltas = sorted(b.ts - a.ts for a, b in zip(points, points[1:], strict=False))
    usual = deltas[len(deltas) // 2] if deltas else 0
    return max(2 * every, (5 * usual) // 2)


def segments(points: Sequence[Sample], every: int) -> list[list[Sample]]:
    """Split time-ordered samples into runs without gaps (each run is one polyline)."""
    limit = gap_threshold(points, every)
    runs: list[list[Sample]] = []
    for point in points:
        if runs and point.ts - runs[-1][-1].ts <= limit:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


# -- value ticks -----------------------------------------------------------------------------


def nice_step(span: float, max_ticks: int) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that splits ``span`` into at most ``max_ticks`` steps."""
    raw = span / max(max_ticks, 1)
    if not raw > 0 or not math.isfinite(raw):
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        step = factor * magnitude
        if step >= raw * (1 - 1e-9):
            return step
    return 10 * magnitude  # pragma: no cover - the loop always returns


def value_ticks(low: float, high: float, max_ticks: int) -> tuple[float, float, list[Tick]]:
    """A padded domain covering ``[low, high]`` and its labelled ticks: at most ``max_ticks`` steps.

    At least two steps are allowed, as data on both sides of zero needs them.
    """
    max_ticks = max(max_ticks, 2)
    low, high = _padded(min(low, high), max(low, high))
    grid = _grid(low, high, max_ticks)
    if grid is None:  # within a step of the largest float: no nice multiple is finite
        values = [low * (1 - k / max_ticks) + high * (k / max_ticks) for k in range(max_ticks + 1)]
        labels = _significant_labels(values, digits=2)  # not round numbers: 1 digit would misplace them
    else:
        step, first, last = grid
        values = [k * step for k in range(first, last + 1)]
        labels = value_labels(values, step)
    return values[0], values[-1], [Tick(v, label) for v, label in zip(values, labels, strict=True)]


def _padded(low: float, high: float) -> tuple[float, float]:
    """Room around flat data (or float noise), kept within the finite floats."""
    if high - low > max(abs(low), abs(high), 1e-3) * 1e-9:
        return low, high
    pad = abs(low) * 0.1 if abs(low) >= 0.01 else 1.0
    return max(low - pad, -sys.float_info.max), min(high + pad, sys.float_info.max)


def _grid(low: float, high: float, max_ticks: int) -> tuple[float, int, int] | None:
    """The finest nice step whose multiples ``first`` to ``last`` cover the data in ``max_ticks`` steps.

    ``None`` when those multiples would overflow (data near the largest float).
    """
    step = nice_step(min(high - low, sys.float_info.max), max_ticks)
    while math.isfinite(step):
        first, last = math.floor(low / step), math.ceil(high / step)
        # low / step can underflow to 0 for subnormal values (found by hypothesis): widen to cover,
        # before counting the steps, or a subnormal low costs one tick too many (#5).
        first -= first * step > low
        last += last * step < high
        if last - first <= max_ticks:
            return (step, first, last) if math.isfinite(first * step) and math.isfinite(last * step) else None
        step = nice_step(step * 1.1, 1)  # the next nice one: 1 → 2 → 2.5 → 5 → 10
    return None


def _decimals(step: float) -> int | None:
    """Decimals needed to tell ticks ``step`` apart (2.5 needs one more than 2 or 5); ``None`` past 12."""
    for decimals in range(0, 13):
        if abs(round(step, decimals) - step) <= abs(step) * 1e-9:
            return decimals
    return None


def value_labels(values: Sequence[float], step: float) -> list[str]:
    """Labels of evenly spaced ticks: one scale (k, M, G) for all, as many decimals as the step needs.

    Steps finer than 10^-12 and values of 10^13 and more get scientific labels instead
    (``5e-13``, ``1.5e-12``; ``2e15``): twelve fixed decimals no longer told such ticks apart
    (#5), and a reader takes in ``1.5e-12`` at a glance where ``0.0000000000015`` needs its
    zeros counted; beyond ``9999G`` fixed digits only grow past the axis margin.
    """
    top = max((abs(v) for v in values), default=0.0)
    scales = ((1e9, 1e9, "G"), (1e6, 1e6, "M"), (1e4, 1e3, "k"))
    size, suffix = next(((size, x) for above, size, x in scales if top >= above), (1.0, ""))
    decimals = _decimals(step / size)
    if decimals is None or top >= 1e13:
        return _significant_labels(values)
    labels = []
    for value in values:
        text = f"{value / size:.{decimals}f}"
        if "." in text and suffix:
            text = text.rstrip("0").rstrip(".")
        if float(text) == 0:
            labels.append("0")
        else:
            labels.append(text + suffix)
    return labels


def _significant_labels(values: Sequence[float], digits: int = 1) -> list[str]:
    """``g`` labels with the fewest significant digits from ``digits`` on that tell ``values`` apart.

    Seventeen digits tell any two floats apart.
    """
    labels: list[str] = []
    for places in range(digits, 18):
        labels = [f"{value:.{places}g}".replace("e+", "e") for value in values]
        if len(set(labels)) == len(labels):
            break
    return labels


# -- time ticks ------------------------------------------------------------------------------


def time_ticks(start: int, end: int, zone: dt.tzinfo, max_ticks: int) -> list[Tick]:
    """Ticks at round local times (minutes, hours, midnights, month or year starts).

    Picks the finest step at least ``(end - start) / max_ticks`` long, so that
    on a plot ``max_ticks * TIME_LABEL_PX`` wide neighbouring labels never
    overlap (a DST change may shorten one step by an hour; the label width
    has room for that).
    """
    max_ticks = max(max_ticks, 1)
    span = max(end - start, 1)
    for step in _SUB_DAY_STEPS:
        if step * max_ticks >= span:
            return _sub_day_ticks(start, end, zone, step)
    for days in _DAY_STEPS:
        if days * DAY * max_ticks >= span:
            return _calendar_ticks(start, end, zone, "day", days)
    for months in _MONTH_STEPS:
        if months * 28 * DAY * max_ticks >= span:  # the shortest months decide
            return _calendar_ticks(start, end, zone, "month", months)
    for years in _YEAR_STEPS:
        if years * 365 * DAY * max_ticks >= span:
            return _calendar_ticks(start, end, zone, "year", years)
    return []


def _to_local(ts: int, zone: dt.tzinfo) -> dt.datetime:
    return us_to_datetime(ts).astimezone(zone)


def _sub_day_ticks(start: int, end: int, zone: dt.tzinfo, step: int) -> list[Tick]:
    """Round local clock times every ``step``; a local midnight is labelled with its date."""
    ticks: dict[int, Tick] = {}
    offset = _offset(start, zone)
    local = (start + offset) // step * step
    while local - offset <= end + step:
        ts = local - offset
        offset = _offset(ts, zone)  # follows DST changes inside the window
        ts = local - offset
        if start <= ts <= end:
            moment = _to_local(ts, zone)
            ticks[ts] = Tick(ts, _clock_label(moment, step))
        local += step
    return [ticks[k] for k in sorted(ticks)]


def _offset(ts: int, zone: dt.tzinfo) -> int:
    delta = _to_local(ts, zone).utcoffset() or dt.timedelta(0)
    return int(delta.total_seconds()) * US


def _clock_label(moment: dt.datetime, step: int) -> str:
    if moment.hour == 0 and moment.minute == 0 and moment.second == 0 and step >= MINUTE:
        return moment.strftime("%b %d").replace(" 0", " ")
    return moment.strftime("%H:%M:%S" if step < MINUTE else "%H:%M")


def _calendar_ticks(start: int, end: int, zone: dt.tzinfo, unit: str, n: int) -> list[Tick]:
    """Local midnights of every ``n``-th day (weeks start on Monday), month or year."""
    ticks = []
    for day, label in _calendar_days(_to_local(start, zone).date(), _to_local(end, zone).date(), unit, n):
        ts = datetime_to_us(dt.datetime(day.year, day.month, day.day, tzinfo=zone))
        if start <= ts <= end:
            ticks.append(Tick(ts, label))
    return ticks


def _calendar_days(first: dt.date, last: dt.date, unit: str, n: int) -> Iterator[tuple[dt.date, str]]:
    if unit == "day":
        day = first
        while day <= last:
            if n in (7, 14):
                keep = day.weekday() == 0 and (n == 7 or (day.toordinal() // 7) % 2 == 0)
            else:
                keep = day.toordinal() % n == 0
            if keep:
                yield day, f"{day:%b} {day.day}"
            day += dt.timedelta(days=1)
    elif unit == "month":
        day = dt.date(first.year, first.month, 1)
        while day <= last:
            if (day.year * 12 + day.month - 1) % n == 0:
                yield day, str(day.year) if day.month == 1 else f"{day:%b}"
            day = _next_month(day)
    else:
        for year in range(first.year, last.year + 1):
            if year % n == 0:
                yield dt.date(year, 1, 1), str(year)


def _next_month(day: dt.date) -> dt.date:
    return dt.date(day.year + day.month // 12, day.month % 12 + 1, 1)


# -- rendering -------------------------------------------------------------------------------


def render(series: Sequence[ChartSeries], frame: Frame, *, title: str, chart_id: str = "chart") -> str:
    """The chart as an ``<svg>`` element with title, description and hover data."""
    two_axes = any(s.right for s in series)
    margin_left, margin_right = _margins(two_axes)
    top, bottom = 14, 26
    width, height = frame.width, frame.height
    plot_w = plot_width(width, two_axes=two_axes)
    plot_h = max(height - top - bottom, 40)
    x_of = _x_scale(frame.start, frame.end, margin_left, plot_w)
    max_value_ticks = max(plot_h // VALUE_LABEL_PX, 2)

    parts: list[str] = []
    hover: list[dict[str, object]] = []
    axes: dict[bool, tuple[float, float, list[Tick]]] = {}
    for right in (False, True):
        drawn = [p for s in series if s.right == right for p in s.samples]
        if drawn:
            axes[right] = value_ticks(min(p.low for p in drawn), max(p.high for p in drawn), max_value_ticks)

    def y_of(value: float, right: bool) -> float:
        low, high, _ = axes[right]
        return top + plot_h - (value / 2 - low / 2) / (high / 2 - low / 2) * plot_h  # halves: no overflow

    parts.append(
        f'<rect class="plot" x="{margin_left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff"'
        ' stroke="#d4d4d8"/>'
    )
    for right, (_low, _high, ticks) in axes.items():
        x_text = margin_left + plot_w + 6 if right else margin_left - 6
        anchor = "start" if right else "end"
        colour = _axis_colour(series, right) if two_axes else "#3f3f46"
        for tick in ticks:
            y = y_of(tick.at, right)
            if not right:
                parts.append(
                    f'<line x1="{margin_left}" x2="{margin_left + plot_w}" y1="{y:.1f}" y2="{y:.1f}"'
                    ' stroke="#ececef"/>'
                )
            parts.append(
                f'<text x="{x_text}" y="{y + 4:.1f}" text-anchor="{anchor}" fill="{colour}">'
                f"{escape(tick.label)}</text>"
            )
    for tick in time_ticks(frame.start, frame.end, frame.zone, max(plot_w // TIME_LABEL_PX, 1)):
        x = x_of(int(tick.at))
        if x + 24 > width:  # a label centred on the right edge would be cut off
            continue
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{top}" y2="{top + plot_h}" stroke="#f1f1f3"/>')
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 17}" text-anchor="middle">{escape(tick.label)}</text>'
        )

    for index, line in enumerate(series):
        colour = PALETTE[index % len(PALETTE)]
        if not line.samples:
            continue
        parts.append(f'<g class="series" data-label="{escape(line.label)}">')
        for run in segments(line.samples, frame.every):
            parts.append(_draw_run(run, colour, x_of, lambda v, r=line.right: y_of(v, r), frame.every))
        parts.append("</g>")
        hover.append(
            {
                "label": line.label,
                "unit": line.unit or "",
                "colour": colour,
                "points": [_hover_point(p, x_of) for p in line.samples],
            }
        )
    if not hover:
        parts.append(_no_data(margin_left, top, plot_w, plot_h))

    desc = describe(series, frame)
    plot = (margin_left, top, plot_w, plot_h)
    return _svg(chart_id, width, height, plot, {"zone": frame.zone_name, "series": hover}, title, desc, parts)


def _draw_run(run: list[Sample], colour: str, x_of: _Scale, y_of: _ValueScale, every: int) -> str:
    """One unbroken stretch: its min–max band (when buckets hold several readings) and its line.

    The band is stepped, each bucket over its own width, and outlined: at two buckets
    a pixel a lone spike would otherwise be a sliver too thin and faint to see, hidden
    by the average line beside it.
    """
    out = []
    if any(p.count > 1 and p.high > p.low for p in run):
        half = every / 2
        upper, lower = [], []
        for p in run:
            left, right = x_of(int(p.ts - half)), x_of(int(p.ts + half))
            upper += [f"{left:.1f},{y_of(p.high):.1f}", f"{right:.1f},{y_of(p.high):.1f}"]
            lower += [f"{right:.1f},{y_of(p.low):.1f}", f"{left:.1f},{y_of(p.low):.1f}"]
        out.append(
            f'<polygon class="band" points="{" ".join(upper)} {" ".join(reversed(lower))}" fill="{colour}"'
            f' fill-opacity="0.15" stroke="{colour}" stroke-opacity="0.45" stroke-width="1"/>'
        )
    if len(run) == 1:
        p = run[0]
        out.append(f'<circle cx="{x_of(p.ts):.1f}" cy="{y_of(p.value):.1f}" r="2.5" fill="{colour}"/>')
        return "".join(out)
    line = " ".join(f"{x_of(p.ts):.1f},{y_of(p.value):.1f}" for p in run)
    out.append(
        f'<polyline points="{line}" fill="none" stroke="{colour}" stroke-width="1.6"'
        ' stroke-linejoin="round"/>'
    )
    return "".join(out)


def _hover_point(p: Sample, x_of: _Scale) -> list[float | int]:
    """``[x, ms, value]``, and the bucket's lowest and highest reading when they differ, and then
    its median when known."""
    point: list[float | int] = [round(x_of(p.ts), 1), p.ts // 1000, _short(p.value)]
    if p.count > 1 and p.high > p.low:
        point += [_short(p.low), _short(p.high)]
        if p.median is not None:
            point.append(_short(p.median))
    return point


class _Scale(Protocol):
    def __call__(self, ts: int) -> float: ...


class _ValueScale(Protocol):
    def __call__(self, value: float) -> float: ...


def _x_scale(start: int, end: int, left: int, plot_w: int) -> _Scale:
    span = max(end - start, 1)

    def x_of(ts: int) -> float:
        return left + (ts - start) / span * plot_w

    return x_of


def _axis_colour(series: Sequence[ChartSeries], right: bool) -> str:
    for index, line in enumerate(series):
        if line.right == right:
            return PALETTE[index % len(PALETTE)]
    return "#3f3f46"  # pragma: no cover - only axes with series are drawn


def _short(value: float) -> float:
    return float(f"{value:.6g}")


def describe(series: Sequence[ChartSeries], frame: Frame) -> str:
    """A sentence per line for screen readers: range, count, min, max and last value."""
    window = (
        f"{format_time(frame.start, frame.zone)} to {format_time(frame.end, frame.zone)} ({frame.zone_name})"
    )
    sentences = [f"Chart from {window}."]
    for line in series:
        unit = f" {line.unit}" if line.unit else ""
        if not line.samples:
            sentences.append(f"{line.label}: no data.")
            continue
        count = sum(p.count for p in line.samples)
        low = min(p.low for p in line.samples)
        high = max(p.high for p in line.samples)
        final = line.samples[-1]
        # A bucket of several readings has an average, not a last reading: say which it is.
        latest = (
            f"last {final.value:.6g}{unit}"
            if final.count == 1
            else f"average of the last {_span(frame.every)} {final.value:.6g}{unit}"
        )
        sentences.append(
            f"{line.label}: {count} readings, lowest {low:.6g}{unit}, highest {high:.6g}{unit}, {latest}."
        )
    return " ".join(sentences)


def _span(every: int) -> str:
    """A bucket's width in words: ``3 h``, ``5 min``, ``1 d``."""
    for size, unit in ((DAY, "d"), (HOUR, "h"), (MINUTE, "min"), (SECOND, "s")):
        if every >= size and every % size == 0:
            return f"{every // size} {unit}"
    return f"{every / SECOND:g} s"


def format_time(ts: int, zone: dt.tzinfo, *, seconds: bool = False) -> str:
    """``2026-11-24 10:05`` in ``zone``."""
    return _to_local(ts, zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


# -- bars (energy and counter totals) --------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bar:
    """One bar: the total of ``[start, end)`` (a local hour, day or month)."""

    start: int
    end: int
    value: float


def render_bars(
    bars: Sequence[Bar], frame: Frame, *, title: str, unit: str | None, chart_id: str = "chart"
) -> str:
    """Totals as an ``<svg>`` bar chart, each bar spanning its period; axes and hover as the lines'."""
    margin_left, _ = _margins(False)
    top, bottom = 14, 26
    width, height = frame.width, frame.height
    plot_w = plot_width(width)
    plot_h = max(height - top - bottom, 40)
    x_of = _x_scale(frame.start, frame.end, margin_left, plot_w)
    values = [b.value for b in bars]
    low, high, ticks = value_ticks(min([0.0, *values]), max([0.0, *values]), max(plot_h // VALUE_LABEL_PX, 2))

    def y_of(value: float) -> float:
        return top + plot_h - (value / 2 - low / 2) / (high / 2 - low / 2) * plot_h

    parts = [
        f'<rect class="plot" x="{margin_left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="#fff"'
        ' stroke="#d4d4d8"/>'
    ]
    for tick in ticks:
        y = y_of(tick.at)
        parts.append(
            f'<line x1="{margin_left}" x2="{margin_left + plot_w}" y1="{y:.1f}" y2="{y:.1f}"'
            ' stroke="#ececef"/>'
            f'<text x="{margin_left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(tick.label)}</text>'
        )
    for tick in time_ticks(frame.start, frame.end, frame.zone, max(plot_w // TIME_LABEL_PX, 1)):
        x = x_of(int(tick.at))
        if x + 24 <= width:
            parts.append(
                f'<text x="{x:.1f}" y="{top + plot_h + 17}" text-anchor="middle">{escape(tick.label)}</text>'
            )
    suffix = f" {unit}" if unit else ""
    colour = PALETTE[0]
    zero = y_of(0.0)
    points = []
    parts.append(f'<g class="series bars" data-label="{escape(title)}">')
    for bar in bars:
        left = x_of(max(bar.start, frame.start))
        right = x_of(min(bar.end, frame.end))
        gap = min((right - left) * 0.15, 3)
        y = y_of(bar.value)
        label = f"{format_time(bar.start, frame.zone)}: {bar.value:.6g}{suffix}"
        parts.append(
            f'<rect class="bar" x="{left + gap / 2:.1f}" y="{min(y, zero):.1f}"'
            f' width="{max(right - left - gap, 1):.1f}"'
            f' height="{abs(zero - y):.1f}" fill="{colour}" data-value="{_short(bar.value)}">'
            f"<title>{escape(label)}</title></rect>"
        )
        points.append([round((left + right) / 2, 1), bar.start // 1000, _short(bar.value)])
    parts.append("</g>")
    if not bars:
        parts.append(_no_data(margin_left, top, plot_w, plot_h))
    total = sum(values)
    desc = (
        f"Bars from {format_time(frame.start, frame.zone)} to {format_time(frame.end, frame.zone)}"
        f" ({frame.zone_name}): {len(bars)} periods, total {total:.6g}{suffix}."
    )
    hover = [{"label": title, "unit": unit or "", "colour": colour, "points": points}] if bars else []
    plot = (margin_left, top, plot_w, plot_h)
    return _svg(chart_id, width, height, plot, {"zone": frame.zone_name, "series": hover}, title, desc, parts)


def _no_data(left: float, top: float, plot_w: float, plot_h: float) -> str:
    """The note in the middle of a plot with nothing to draw."""
    return (
        f'<text class="empty" x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}"'
        ' text-anchor="middle" fill="#71717a">No data in this range</text>'
    )


def _svg(
    chart_id: str,
    width: int,
    height: int,
    plot: tuple[float, float, float, float],
    hover: dict[str, Any],
    title: str,
    desc: str,
    parts: list[str],
) -> str:
    """The chart's outer element: its size, the plot area and hover data for the page's script, and
    a title and description for screen readers, around ``parts``."""
    data = escape(json.dumps(hover, separators=(",", ":")))
    left, top, plot_w, plot_h = plot
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" role="img" aria-labelledby="{chart_id}-t {chart_id}-d"'
        f' font-family="system-ui, sans-serif" font-size="11" fill="#3f3f46"'
        f' data-plot="{left},{top},{plot_w},{plot_h}" data-hover="{data}">'
        f'<title id="{chart_id}-t">{escape(title)}</title><desc id="{chart_id}-d">{escape(desc)}</desc>'
        + "".join(parts)
        + "</svg>"
    )
