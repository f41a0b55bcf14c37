"""JSON read API under /api/v1: readings, buckets, latest values and streamed exports.

Access: a read or write key of the channel, or the owner's user key
(``api_key`` parameter, ``X-THINGSPEAKAPIKEY``, or ``Authorization: Bearer``);
public channels need none. Unknown and forbidden channels are both 404.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Response, current_app, jsonify, request, stream_with_context

from fieldstation import export, params, query
from fieldstation.errors import NotFound
from fieldstation.http import api_bp
from fieldstation.http.readaccess import channel_or_none
from fieldstation.models import Channel, Field
from fieldstation.points import get_zone, now_us
from fieldstation.query import DAY, MAX_LIMIT

#: Windows when no start is given: raw readings and buckets look back a day, exports everything.
DEFAULT_SPAN = DAY
EXPORT_SPAN = 400 * 365 * DAY


def _channel(channel_id: int) -> Channel:
    channel = channel_or_none(channel_id)
    if channel is None:
        raise NotFound("channel not found")
    return channel


def _field(channel: Channel, number: int) -> Field:
    field = query.field_of(channel.id, number)
    if field is None:
        raise NotFound(f"channel has no field {number}")
    return field


def _selected(channel: Channel) -> list[Field]:
    numbers = params.parse_fields(request.args.getlist("fields"), [f.number for f in channel.fields])
    by_number = {f.number: f for f in channel.fields}
    return [by_number[n] for n in numbers]


def _window(zone: dt.tzinfo, span: int = DEFAULT_SPAN) -> tuple[int, int]:
    args = request.args
    return params.parse_window(args.get("start"), args.get("end"), now=now_us(), default_span=span, zone=zone)


def _value(point: query.Point) -> float | str | None:
    return point.value if point.value is not None else point.text


@api_bp.get("/channels/<int:channel_id>/readings")
def readings(channel_id: int) -> Response:
    """Raw readings of one or more fields, one row per timestamp, paged by ``cursor``."""
    channel = _channel(channel_id)
    fields, zone = _selected(channel), get_zone(request.args.get("tz"))
    start, end = _window(zone)
    limit = params.parse_int(request.args.get("limit"), "limit", default=1000, low=1, high=MAX_LIMIT - 1)
    descending = params.parse_order(request.args.get("order"))
    after = params.parse_cursor(request.args.get("cursor"))
    rows: dict[int, dict[str, Any]] = {}
    for field in fields:
        key = str(field.number)
        for point in query.series(field.id, start, end, limit=limit + 1, descending=descending, after=after):
            found = rows.get(point.ts)
            value = point.value if point.value is not None else point.text
            if found is None:
                rows[point.ts] = {key: value}
            else:
                found[key] = value
    stamps = sorted(rows, reverse=descending) if len(fields) > 1 else list(rows)
    page = stamps[:limit]
    fmt = params.format_time
    return jsonify(
        channel_id=channel.id,
        fields=[{"number": f.number, "name": f.name, "unit": f.unit} for f in fields],
        readings=[{"time": fmt(ts, zone), "ts": ts, "values": rows[ts]} for ts in page],
        next_cursor=str(page[-1]) if len(stamps) > limit else None,
    )


@api_bp.get("/channels/<int:channel_id>/buckets")
def buckets(channel_id: int) -> Response:
    """Aggregates per time bucket (``every=1h`` or ``auto`` with ``points``), computed in SQL."""
    channel = _channel(channel_id)
    fields, tz = _selected(channel), request.args.get("tz")
    zone = get_zone(tz)
    start, end = _window(zone)
    functions = params.parse_functions(request.args.get("fn"))
    every_arg = (request.args.get("every") or "auto").strip().lower()
    points = params.parse_int(request.args.get("points"), "points", default=1000, low=1, high=10_000)
    every = query.auto_every(start, end, points) if every_arg == "auto" else params.parse_duration(every_arg)
    series = []
    for field in fields:
        rows = query.buckets(field.id, start, end, every, tz=tz)
        series.append(
            {
                "field": field.number,
                "name": field.name,
                "buckets": [
                    {"time": params.format_time(b.start, zone), "ts": b.start}
                    | {fn: getattr(b, fn) for fn in functions}
                    for b in rows
                ],
            }
        )
    return jsonify(channel_id=channel.id, every_s=every / 1_000_000, fn=functions, series=series)


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
    field = _field(_channel(channel_id), number)
    start, end = _window(dt.UTC, EXPORT_SPAN)
    maker = export.field_csv if fmt == "csv" else export.field_ndjson
    return _stream(maker(field, start, end), fmt, f"channel-{channel_id}-field-{number}")


def _stream(body: Any, fmt: str, name: str) -> Response:
    response = Response(stream_with_context(body), content_type=_EXPORT_TYPES[fmt])
    response.headers["Content-Disposition"] = f'attachment; filename="{name}.{fmt}"'
    current_app.logger.info("export %s.%s started", name, fmt)
    return response
