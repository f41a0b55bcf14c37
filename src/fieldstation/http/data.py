"""JSON read API under /api/v1: readings, buckets, latest values and streamed exports.

Access: a read or write key of the channel, or the owner's user key
(``api_key``/``key`` parameter, ``X-THINGSPEAKAPIKEY``, ``Authorization: Bearer`` or
``X-Fieldstation-Key``: :func:`fieldstation.http.readaccess.read_key`);
public channels need none. Unknown and forbidden channels are both 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, current_app, jsonify, request, stream_with_context

from fieldstation import energy, export, params, query, rollups
from fieldstation.buckets import auto_every
from fieldstation.errors import BadRequest, NotFound
from fieldstation.http import api_bp
from fieldstation.http.readaccess import channel_or_none
from fieldstation.points import get_zone
from fieldstation.query import MAX_LIMIT, ChannelInfo, FieldInfo
from fieldstation.timeunits import DAY, now_us

#: Windows when no start is given: raw readings and buckets look back a day, exports everything.
DEFAULT_SPAN = DAY
EXPORT_SPAN = 400 * 365 * DAY


def _channel(channel_id: int, numbers: tuple[int, int] = query.ALL_FIELDS) -> ChannelInfo:
    channel = channel_or_none(channel_id, numbers)
    if channel is None:
        raise NotFound("channel not found")
    return channel


def _field(channel: ChannelInfo, number: int) -> FieldInfo:
    field = channel.field(number)
    if field is None:
        raise NotFound(f"channel has no field {number}")
    return field


def _selected(channel_id: int) -> tuple[ChannelInfo, list[FieldInfo]]:
    """The channel and the fields ``fields=`` names (all when none), loading only those fields."""
    raw = request.args.getlist("fields")
    try:
        wanted = params.parse_field_numbers(raw)
    except BadRequest:
        wanted = []  # parse_fields reports it below, after the channel check (unknown is 404 first)
    channel = _channel(channel_id, (min(wanted), max(wanted)) if wanted else query.ALL_FIELDS)
    numbers = params.parse_fields(raw, [f.number for f in channel.fields])
    by_number = {f.number: f for f in channel.fields}
    return channel, [by_number[n] for n in numbers]


def _window(zone: dt.tzinfo, span: int = DEFAULT_SPAN) -> tuple[int, int]:
    args = request.args
    return params.parse_window(args.get("start"), args.get("end"), now=now_us(), default_span=span, zone=zone)


def _value(point: query.Point) -> float | str | None:
    return point.value if point.value is not None else point.text


@api_bp.get("/channels/<int:channel_id>/readings")
def readings(channel_id: int) -> Response:
    """Raw readings of one or more fields, one row per timestamp, paged by ``cursor``."""
    channel, fields = _selected(channel_id)
    zone = get_zone(request.args.get("tz"))
    start, end = _window(zone)
    limit = params.parse_int(request.args.get("limit"), "limit", default=1000, low=1, high=MAX_LIMIT - 1)
    descending = params.parse_order(request.args.get("order"))
    after = params.parse_cursor(request.args.get("cursor"))
    if len(fields) == 1:
        # One field (a chart, the 24-hour window): rows are already in order, one per timestamp.
        key = str(fields[0].number)
        got = query.series_rows(fields[0].id, start, end, limit=limit + 1, descending=descending, after=after)
        page, texts = got.pairs[:limit], got.texts
        times = params.format_times([ts for ts, _ in page], zone)
        readings = [
            {"time": time, "ts": ts, "values": {key: value if value is not None else texts.get(ts)}}
            for time, (ts, value) in zip(times, page, strict=True)
        ]
        cursor = str(page[-1][0]) if len(got.pairs) > limit else None
    else:
        readings, cursor = _merged(fields, start, end, limit, descending, after, zone)
    return jsonify(
        channel_id=channel.id,
        fields=[{"number": f.number, "name": f.name, "unit": f.unit} for f in fields],
        readings=readings,
        next_cursor=cursor,
    )


def _merged(
    fields: list[FieldInfo],
    start: int,
    end: int,
    limit: int,
    descending: bool,
    after: int | None,
    zone: dt.tzinfo,
) -> tuple[list[dict[str, Any]], str | None]:
    """Rows of several fields merged by timestamp: the first ``limit`` timestamps, and the cursor."""
    rows: dict[int, dict[str, Any]] = {}
    for field in fields:
        key = str(field.number)
        for point in query.series(field.id, start, end, limit=limit + 1, descending=descending, after=after):
            value = point.value if point.value is not None else point.text
            found = rows.get(point.ts)
            if found is None:
                rows[point.ts] = {key: value}
            else:
                found[key] = value
    stamps = sorted(rows, reverse=descending)
    page = stamps[:limit]
    times = params.format_times(page, zone)
    readings = [{"time": time, "ts": ts, "values": rows[ts]} for time, ts in zip(times, page, strict=True)]
    return readings, str(page[-1]) if len(stamps) > limit else None


@api_bp.get("/channels/<int:channel_id>/buckets")
def buckets(channel_id: int) -> Response:
    """Aggregates per time bucket (``every=1h`` or ``auto`` with ``points``), computed in SQL."""
    channel, fields = _selected(channel_id)
    tz = request.args.get("tz")
    zone = get_zone(tz)
    start, end = _window(zone)
    functions = params.parse_functions(request.args.get("fn"))
    every_arg = (request.args.get("every") or "auto").strip().lower()
    points = params.parse_int(request.args.get("points"), "points", default=1000, low=1, high=10_000)
    every = auto_every(start, end, points) if every_arg == "auto" else params.parse_duration(every_arg)
    series = [_bucket_series(field, start, end, every, tz, zone, functions) for field in fields]
    return jsonify(channel_id=channel.id, every_s=every / 1_000_000, fn=functions, series=series)


def _bucket_series(
    field: FieldInfo, start: int, end: int, every: int, tz: str | None, zone: dt.tzinfo, functions: list[str]
) -> dict[str, Any]:
    """One field's buckets: the aggregates from the rollups, energy and increase from their chains,
    medians and percentiles from every value (:func:`fieldstation.query.percentiles`)."""
    plain = [fn for fn in functions if fn in params.FUNCTIONS]
    wanted = [fn for fn in functions if fn in params.TOTALS]
    ranked = [fn for fn in functions if fn not in params.FUNCTIONS and fn not in params.TOTALS]
    rows: dict[int, dict[str, Any]] = {}
    blank = dict.fromkeys(functions) | ({"count": 0} if "count" in plain else {})

    def put(bucket: int, values: dict[str, Any]) -> None:
        rows.setdefault(bucket, dict(blank)).update(values)

    if plain or not (wanted or ranked):
        for b in rollups.buckets(field.id, start, end, every, tz=tz):
            put(b.start, {fn: getattr(b, fn) for fn in plain})
    if wanted:
        for total in energy.totals(field.id, start, end, every, tz=tz):
            put(total.start, {fn: getattr(total, fn) for fn in wanted})
    for fn in ranked:
        for bucket, value in _order_statistic(field.id, start, end, every, tz, fn):
            put(bucket, {fn: value})
    starts = sorted(rows)
    times = params.format_times(starts, zone)
    result: dict[str, Any] = {"field": field.number, "name": field.name, "unit": field.unit}
    if wanted:
        result["units"] = {
            fn: energy.energy_unit(field.unit) if fn == "energy" else field.unit for fn in wanted
        }
    result["buckets"] = [{"time": time, "ts": ts} | rows[ts] for time, ts in zip(times, starts, strict=True)]
    return result


def _order_statistic(
    field_id: int, start: int, end: int, every: int, tz: str | None, fn: str
) -> list[tuple[int, float]]:
    """``median`` (ThingSpeak's ``median=`` rule: :func:`fieldstation.query.medians`) or ``pN``."""
    if fn == "median":
        return query.medians(field_id, start, end, every, tz=tz)
    percent = params.percentile_of(fn)
    assert percent is not None  # parse_functions let only these through
    return query.percentiles(field_id, start, end, every, percent, tz=tz)


@api_bp.get("/channels/<int:channel_id>/entries/latest")
def latest_entry(channel_id: int) -> Response:
    """The newest entry of a channel with all its values (404 when there is none yet)."""
    channel = _channel(channel_id)
    zone = get_zone(request.args.get("tz"))
    entry = query.latest_entry(channel.id)
    if entry is None:
        raise NotFound("channel has no entries yet", code="no_data")
    return jsonify(
        channel_id=channel.id,
        entry_id=entry.entry_id,
        time=params.format_time(entry.ts, zone),
        ts=entry.ts,
        values={str(n): v for n, v in sorted(entry.values.items())},
        status=entry.status,
        latitude=entry.latitude,
        longitude=entry.longitude,
        elevation=entry.elevation,
    )


@api_bp.get("/channels/<int:channel_id>/latest")
def latest_values(channel_id: int) -> Response:
    """The newest value of every field (each with its own time)."""
    channel = _channel(channel_id)
    zone = get_zone(request.args.get("tz"))
    latest = query.latest_values(channel.id)
    return jsonify(
        channel_id=channel.id,
        fields=[
            {
                "number": f.number,
                "name": f.name,
                "unit": f.unit,
                "time": params.format_time(latest[f.number].ts, zone) if f.number in latest else None,
                "value": _value(latest[f.number]) if f.number in latest else None,
            }
            for f in channel.fields
        ],
    )


_EXPORT_TYPES = {"csv": "text/csv; charset=utf-8", "ndjson": "application/x-ndjson"}


@api_bp.get("/channels/<int:channel_id>/export.<any(csv, ndjson):fmt>")
def export_channel(channel_id: int, fmt: str) -> Response:
    """Every entry of a channel in the window, streamed with constant memory."""
    channel = _channel(channel_id)
    start, end = _window(dt.UTC, EXPORT_SPAN)
    maker = export.channel_csv if fmt == "csv" else export.channel_ndjson
    body = maker(channel.id, list(channel.fields), start, end)
    return _stream(body, fmt, f"channel-{channel.id}")


@api_bp.get("/channels/<int:channel_id>/fields/<int:number>/export.<any(csv, ndjson):fmt>")
def export_field(channel_id: int, number: int, fmt: str) -> Response:
    """Every reading of one field in the window, streamed with constant memory."""
    field = _field(_channel(channel_id, (number, number)), number)
    start, end = _window(dt.UTC, EXPORT_SPAN)
    maker = export.field_csv if fmt == "csv" else export.field_ndjson
    return _stream(maker(field, start, end), fmt, f"channel-{channel_id}-field-{number}")


def _stream(body: Any, fmt: str, name: str) -> Response:
    response = Response(stream_with_context(body), content_type=_EXPORT_TYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    current_app.logger.info("export %s.%s started", name, fmt)
    return response
