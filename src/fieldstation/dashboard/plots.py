"""From a channel's fields to SVG charts: asks the query module for buckets, hands them to charts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from fieldstation import charts, rollups
from fieldstation.buckets import auto_every
from fieldstation.dashboard.ranges import Window
from fieldstation.models import Channel, Field
from fieldstation.points import plain_int


def _zone_name(zone: dt.tzinfo) -> str | None:
    name = getattr(zone, "key", None)
    return str(name) if name else None


def _series(field: Field, win: Window, every: int, zone: dt.tzinfo, *, right: bool = False) -> charts.Series:
    buckets = rollups.buckets(field.id, win.start, win.end, every, tz=_zone_name(zone))
    return charts.Series(
        label=field.name,
        unit=field.unit,
        samples=charts.samples(buckets, every, win.start, win.end),
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


def channel_charts(
    channel: Channel, win: Window, zone: dt.tzinfo, width: int, wide: int, pair: str | None = None
) -> dict[str, str]:
    """Every chart of the channel page, keyed by the id of the element that holds it.

    ``width`` is the field charts' width, ``wide`` the two-axis chart's (it spans the page).
    """
    result = {f"f{field.number}": field_chart(field, win, zone, width) for field in channel.fields}
    two = pair_of(channel, pair)
    if two is not None:
        result["pair"] = pair_chart(two[0], two[1], win, zone, wide)
    return result
