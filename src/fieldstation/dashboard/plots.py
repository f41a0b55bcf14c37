"""From a channel's fields to SVG charts: asks the query module for buckets, hands them to charts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from fieldstation import charts, energy, query, rollups
from fieldstation.buckets import auto_every
from fieldstation.dashboard.ranges import Window
from fieldstation.models import Channel, Field
from fieldstation.points import plain_int
from fieldstation.timeunits import DAY, HOUR, datetime_to_us, now_us


def _zone_name(zone: dt.tzinfo) -> str | None:
    name = getattr(zone, "key", None)
    return str(name) if name else None


#: Most readings in a chart's window for which its hover read-out also gives each bucket's median:
#: a median reads every value (the database sorts them), the rollups hold none. A month of
#: one-minute readings; longer windows show average and range only.
MEDIAN_READINGS = 50_000


def _series(
    field: Field, win: Window, every: int, zone: dt.tzinfo, *, right: bool = False
) -> charts.ChartSeries:
    buckets = rollups.buckets(field.id, win.start, win.end, every, tz=_zone_name(zone))
    medians: dict[int, float] = {}
    if any(b.count > 2 for b in buckets) and sum(b.count for b in buckets) <= MEDIAN_READINGS:
        medians = dict(query.medians(field.id, win.start, win.end, every, tz=_zone_name(zone)))
    return charts.ChartSeries(
        label=field.name,
        unit=field.unit,
        samples=charts.samples(buckets, every, win.start, win.end, medians),
        right=right,
    )


def label(field: Field) -> str:
    """``Temperature (°C)``."""
    return f"{field.name} ({field.unit})" if field.unit else field.name


def field_chart(field: Field, win: Window, zone: dt.tzinfo, width: int, height: int = 260) -> str:
    """One field over the window, at most about two buckets per pixel."""
    frame = _frame(win, zone, width, height, two_axes=False)
    series = [_series(field, win, frame.every, zone)]
    return charts.render(series, frame, title=label(field), chart_id=f"chart-f{field.number}")


def pair_chart(left: Field, right: Field, win: Window, zone: dt.tzinfo, width: int, height: int = 300) -> str:
    """Two fields on two y axes (the seed's watts and temperature)."""
    frame = _frame(win, zone, width, height, two_axes=True)
    series = [_series(left, win, frame.every, zone), _series(right, win, frame.every, zone, right=True)]
    title = f"{label(left)} and {label(right)}"
    return charts.render(series, frame, title=title, chart_id="chart-pair")


def _frame(win: Window, zone: dt.tzinfo, width: int, height: int, *, two_axes: bool) -> charts.Frame:
    pixels = charts.plot_width(width, two_axes=two_axes)
    every = auto_every(win.start, win.end, charts.POINTS_PER_PX * pixels)
    return charts.Frame(win.start, win.end, every, zone, width, height)


def pair_of(channel: Channel, wanted: str | None) -> tuple[Field, Field] | None:
    """The two fields of the two-axis chart: ``?pair=2,1``, else the first two fields."""
    fields: Sequence[Field] = channel.fields
    by_number = {f.number: f for f in fields}
    if wanted:
        numbers = [plain_int(n.strip()) for n in wanted.split(",")]
        chosen = [by_number[n] for n in numbers if n in by_number]
        if len(chosen) == 2 and chosen[0] is not chosen[1]:
            return chosen[0], chosen[1]
    return (fields[0], fields[1]) if len(fields) >= 2 else None


# -- totals of power and counter fields -----------------------------------------------------


def has_totals(field: Field) -> bool:
    """Power fields have energy, counters an increase (docs/energy.md)."""
    return field.kind in energy.TOTAL_OF


def total_unit(field: Field) -> str | None:
    """kWh for a power field in kW; a counter's own unit."""
    return energy.energy_unit(field.unit) if field.kind == "power" else field.unit


def _value(field: Field, total: energy.Total) -> float:
    return total.energy if field.kind == "power" else total.increase


def _midnight(day: dt.date, zone: dt.tzinfo) -> int:
    return datetime_to_us(dt.datetime(day.year, day.month, day.day, tzinfo=zone))


def _local_day(ts: int, zone: dt.tzinfo) -> dt.date:
    return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts)).astimezone(zone).date()


def bars(field: Field, start: int, end: int, zone: dt.tzinfo) -> list[charts.Bar]:
    """Totals per hour (a window of up to two days), per local day (up to 93 days), else per month."""
    if end - start <= 2 * DAY:
        rows = energy.totals(field.id, start, end, HOUR, tz=_zone_name(zone))
        return [charts.Bar(t.start, t.start + HOUR, _value(field, t)) for t in rows]
    rows = energy.totals(field.id, start, end, DAY, tz=_zone_name(zone))
    days = [(_local_day(t.start, zone), _value(field, t)) for t in rows]
    if end - start <= 93 * DAY:
        return [charts.Bar(_midnight(d, zone), _midnight(d + dt.timedelta(days=1), zone), v) for d, v in days]
    months: dict[dt.date, float] = {}
    for day, value in days:
        first = day.replace(day=1)
        months[first] = months.get(first, 0.0) + value
    return [
        charts.Bar(_midnight(m, zone), _midnight((m + dt.timedelta(days=32)).replace(day=1), zone), v)
        for m, v in months.items()
    ]


def bar_chart(field: Field, win: Window, zone: dt.tzinfo, width: int, height: int = 260) -> str:
    """The field's energy or increase over the window as bars."""
    frame = charts.Frame(win.start, win.end, HOUR, zone, width, height)
    unit = total_unit(field)
    title = f"{field.name}: {'energy' if field.kind == 'power' else 'increase'}" + (
        f" ({unit})" if unit else ""
    )
    found = bars(field, win.start, win.end, zone)
    return charts.render_bars(found, frame, title=title, unit=unit, chart_id=f"chart-b{field.number}")


@dataclass(frozen=True, slots=True)
class SoFar:
    """A power field's energy (a counter's increase) today and this month, in the viewer's zone."""

    today: float
    month: float
    unit: str | None


def so_far(field: Field, zone: dt.tzinfo, now: int | None = None) -> SoFar | None:
    """Today so far and this month so far (None for a gauge)."""
    if not has_totals(field):
        return None
    now = now_us() if now is None else now
    today = _local_day(now, zone)
    day_start, month_start = _midnight(today, zone), _midnight(today.replace(day=1), zone)
    rows = energy.totals(field.id, month_start, now + 1, DAY, tz=_zone_name(zone))
    return SoFar(
        sum(_value(field, t) for t in rows if t.start >= day_start),
        sum(_value(field, t) for t in rows),
        total_unit(field),
    )


def totals_of(channel: Channel, zone: dt.tzinfo) -> dict[int, SoFar]:
    """Today and this month so far for each power and counter field of the channel, by number."""
    return {f.number: found for f in channel.fields if (found := so_far(f, zone)) is not None}


def channel_charts(
    channel: Channel, win: Window, zone: dt.tzinfo, width: int, wide: int, pair: str | None = None
) -> dict[str, str]:
    """Every chart of the channel page, keyed by the id of the element that holds it.

    ``width`` is the field charts' width, ``wide`` the two-axis chart's (it spans the page).
    """
    result = {f"f{field.number}": field_chart(field, win, zone, width) for field in channel.fields}
    result |= {f"b{f.number}": bar_chart(f, win, zone, width) for f in channel.fields if has_totals(f)}
    two = pair_of(channel, pair)
    if two is not None:
        result["pair"] = pair_chart(two[0], two[1], win, zone, wide)
    return result
