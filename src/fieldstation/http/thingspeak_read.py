"""ThingSpeak's read API, shaped as api.thingspeak.com answers it (docs/clients.md §1, §2, §6).

Values are JSON strings, ``created_at`` is in the requested zone with
second precision. Failures answer ThingSpeak's ``-1`` body: 404 for unknown
and forbidden channels alike (no probing), 400 for bad parameters; the
reason is in the ``X-Fieldstation-Error`` header. A non-200 status makes the
Arduino library report the failure instead of a plausible ``-1`` reading.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Callable
from typing import Any
from xml.etree import ElementTree as ET

from flask import Blueprint, Response, current_app, request

from fieldstation import energy, params, query, rollups
from fieldstation.errors import FieldstationError, NotFound
from fieldstation.http.readaccess import channel_or_none
from fieldstation.jsonprovider import encode
from fieldstation.params import FeedOptions
from fieldstation.points import UNSTORABLE, number_text
from fieldstation.query import ChannelInfo, FieldInfo
from fieldstation.timeunits import US, now_us

thingspeak_read_bp = Blueprint("thingspeak_read", __name__)

#: ThingSpeak exposes fields 1..8.
TS_FIELDS = range(1, 9)
FMT = "<any(json, csv, xml):fmt>"


@thingspeak_read_bp.errorhandler(FieldstationError)
def _ts_error(exc: FieldstationError) -> Response:
    from fieldstation.extensions import db

    db.session.rollback()
    status = 404 if exc.status in (401, 403, 404) else 400
    response = Response("-1", status=status, mimetype="text/plain")
    response.headers["X-Fieldstation-Error"] = exc.message.encode("ascii", "replace").decode()[:200]
    return response


# -- helpers ----------------------------------------------------------------------------------


def _channel(channel_id: int) -> ChannelInfo:
    channel = channel_or_none(channel_id, (TS_FIELDS.start, TS_FIELDS.stop - 1))
    if channel is None:
        raise NotFound("channel not found")
    return channel


def _fields(channel: ChannelInfo) -> list[FieldInfo]:
    return [f for f in channel.fields if f.number in TS_FIELDS]


def _field(channel: ChannelInfo, number: int) -> FieldInfo:
    field = channel.field(number) if number in TS_FIELDS else None
    if field is None:
        raise NotFound(f"channel has no field {number}")
    return field


def _options() -> FeedOptions:
    cfg = current_app.config
    return params.parse_feed_options(
        request.args,
        now=now_us(),
        default_results=int(cfg["DEFAULT_RESULTS"]),
        max_results=int(cfg["MAX_RESULTS"]),
    )


def _text(value: float | str | None, digits: int | None = None) -> str | None:
    """A value as ThingSpeak shows it: a string; integral floats without ``.0``."""
    if value is None or isinstance(value, str):
        return value
    if digits is not None:
        return f"{value:.{digits}f}"
    return number_text(value)


def _time(ts: int, zone: dt.tzinfo) -> str:
    return params.format_time(ts, zone, seconds=True)


def _channel_json(channel: ChannelInfo, opts: FeedOptions | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": channel.id,
        "name": channel.name,
        "description": channel.description,
        "latitude": _text(channel.latitude) or "0.0",
        "longitude": _text(channel.longitude) or "0.0",
    }
    body.update({f"field{f.number}": f.name for f in _fields(channel)})
    zone = opts.zone if opts else dt.UTC
    body["created_at"] = _time(_dt_us(channel.created_at), zone)
    body["updated_at"] = _time(_dt_us(channel.updated_at), zone)
    if opts and opts.metadata:
        from fieldstation import channelmeta

        body["metadata"] = channelmeta.read(channel.id).metadata
    body["last_entry_id"] = channel.last_entry_id
    return body


def _dt_us(moment: dt.datetime) -> int:
    from fieldstation.timeunits import datetime_to_us

    return datetime_to_us(moment)


def _feed_writer(
    numbers: list[int], opts: FeedOptions
) -> Callable[[query.EntryRow, str | None], dict[str, Any]]:
    """What makes one feed object of an entry, with what every row shares decided once.

    A feed of 1,440 entries (a day of one-minute readings) spent most of its time
    here, re-deciding per value which keys and filters apply. The writer takes
    ``created_at`` when the caller formatted the times of all rows at once.
    """
    keys = [(n, f"field{n}") for n in numbers]
    bounded = opts.min is not None or opts.max is not None
    digits, zone, status, location = opts.round, opts.zone, opts.status, opts.location

    def feed(entry: query.EntryRow, created_at: str | None) -> dict[str, Any]:
        out: dict[str, Any] = {
            "created_at": _time(entry.ts, zone) if created_at is None else created_at,
            "entry_id": entry.entry_id,
        }
        values = entry.values
        for number, key in keys:
            value = values.get(number)
            out[key] = _text(_filtered(value, opts) if bounded else value, digits)
        if status:
            out["status"] = entry.status
        if location:
            out["latitude"] = _text(entry.latitude)
            out["longitude"] = _text(entry.longitude)
            out["elevation"] = _text(entry.elevation)
        return out

    return feed


def _filtered(value: float | str | None, opts: FeedOptions) -> float | str | None:
    """ThingSpeak's ``min``/``max``: values outside are left out (text too, when a bound is set)."""
    if value is None or (opts.min is None and opts.max is None):
        return value
    if isinstance(value, str):
        return None
    if (opts.min is not None and value < opts.min) or (opts.max is not None and value > opts.max):
        return None
    return value


def _feeds(
    channel: ChannelInfo, numbers: list[int], opts: FeedOptions, field: FieldInfo | None
) -> list[dict[str, Any]]:
    """The feed objects: newest ``results`` entries, or aggregated buckets when asked."""
    if opts.results == 0:
        return []
    if opts.aggregate is not None:
        return _aggregated(channel, numbers, opts)
    if field is not None:
        rows = query.field_entries(
            channel.id, field.id, field.number, opts.start, opts.end, limit=opts.results
        )
    else:
        rows = query.entries(channel.id, opts.start, opts.end, limit=opts.results)
    times = params.format_times([e.ts for e in rows], opts.zone, seconds=True)
    feed = _feed_writer(numbers, opts)
    feeds = [feed(e, time) for e, time in zip(rows, times, strict=True)]
    if opts.min is not None or opts.max is not None:
        feeds = [f for f in feeds if any(f[f"field{n}"] is not None for n in numbers)]
    return feeds


def _aggregated(channel: ChannelInfo, numbers: list[int], opts: FeedOptions) -> list[dict[str, Any]]:
    """Buckets of ``timescale`` (first value), ``sum``, ``average`` or ``median``, computed in SQL.

    Without a time window the window is the span of the newest ``results`` entries.
    """
    assert opts.aggregate is not None
    kind, every = opts.aggregate
    start, end = opts.start, opts.end
    if start is None:
        newest = query.entries(channel.id, None, end, limit=opts.results)
        if not newest:
            return []
        start, end = newest[0].ts, newest[-1].ts + 1
    end = now_us() + 1 if end is None else end
    tz = opts.zone if every == 1440 * 60 * US else None
    per_bucket: dict[int, dict[int, float | None]] = {}
    for n in numbers:
        field = channel.field(n)
        if field is None:
            continue
        for ts, value in _bucket_values(field, kind, start, end, every, tz):
            per_bucket.setdefault(ts, {})[n] = value
    feeds = []
    for ts in sorted(per_bucket)[-opts.results :]:
        feed: dict[str, Any] = {"created_at": _time(ts, opts.zone), "entry_id": None}
        for n in numbers:
            feed[f"field{n}"] = _text(_filtered(per_bucket[ts].get(n), opts), opts.round)
        feeds.append(feed)
    return feeds


def _bucket_values(
    field: FieldInfo, kind: str, start: int, end: int, every: int, tz: dt.tzinfo | None
) -> list[tuple[int, float | None]]:
    """(bucket start, value) of one field for ``timescale``, ``sum``, ``average`` or ``median``.

    ``sum`` of a power field is its energy, of a counter its increase (docs/decisions.md): the
    total its owner declared it has, where ThingSpeak adds the readings up.
    """
    if kind == "median":
        return list(query.medians(field.id, start, end, every, tz=tz))
    if kind == "sum" and field.kind in energy.TOTAL_OF:
        total = energy.TOTAL_OF[field.kind]
        return [(t.start, getattr(t, total)) for t in energy.totals(field.id, start, end, every, tz=tz)]
    attr = {"timescale": "first", "sum": "sum", "average": "avg"}[kind]
    return [(b.start, getattr(b, attr)) for b in rollups.buckets(field.id, start, end, every, tz=tz)]


# -- rendering --------------------------------------------------------------------------------


def _render(
    fmt: str, channel_body: dict[str, Any] | None, feeds: list[dict[str, Any]], zone: dt.tzinfo
) -> Response:
    if fmt == "json":
        body = {"channel": channel_body, "feeds": feeds} if channel_body is not None else {"feeds": feeds}
        return _json(body)
    if fmt == "csv":
        return _csv(feeds, zone)
    return _xml(channel_body or {}, feeds)


def _json(body: Any) -> Response:
    return Response(encode(body), mimetype="application/json")


def _csv(feeds: list[dict[str, Any]], zone: dt.tzinfo) -> Response:
    """ThingSpeak's CSV: ``created_at`` as ``2024-01-01 00:00:00 UTC`` (or ``+0100``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    columns = list(feeds[0]) if feeds else ["created_at", "entry_id"]
    writer.writerow(columns)
    for feed in feeds:
        row = dict(feed)
        moment = dt.datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
        suffix = "UTC" if zone is dt.UTC else moment.strftime("%z")
        row["created_at"] = f"{moment:%Y-%m-%d %H:%M:%S} {suffix}"
        writer.writerow(["" if row[c] is None else row[c] for c in columns])
    return Response(buffer.getvalue(), mimetype="text/csv")


def _xml(channel_body: dict[str, Any], feeds: list[dict[str, Any]]) -> Response:
    """Rails-style XML as ThingSpeak serves it: dashed tags, typed integers and times."""
    root = ET.Element("channel")
    for key, value in channel_body.items():
        _xml_value(root, key, value)
    array = ET.SubElement(root, "feeds", type="array")
    for feed in feeds:
        item = ET.SubElement(array, "feed")
        for key, value in feed.items():
            _xml_value(item, key, value)
    text = ET.tostring(root, encoding="unicode")
    return Response('<?xml version="1.0" encoding="UTF-8"?>\n' + text, mimetype="application/xml")


def _xml_value(parent: ET.Element, key: str, value: Any) -> None:
    tag = key.replace("_", "-")
    if value is None:
        ET.SubElement(parent, tag, nil="true")
    elif isinstance(value, bool) or not isinstance(value, int):
        kind = {"created-at": "dateTime", "updated-at": "dateTime"}.get(tag)
        element = ET.SubElement(parent, tag, type=kind) if kind else ET.SubElement(parent, tag)
        element.text = UNSTORABLE.sub("\ufffd", str(value))  # text stored before writes refused these
    else:
        ET.SubElement(parent, tag, type="integer").text = str(value)


# -- routes -----------------------------------------------------------------------------------


@thingspeak_read_bp.get("/channels/<int:channel_id>.json")
def channel_view(channel_id: int) -> Response:
    """The channel's settings (``thingspeak.Channel.view()``)."""
    channel = _channel(channel_id)
    body = _channel_json(channel)
    body["elevation"] = _text(channel.elevation) or ""
    body["public_flag"] = channel.public
    from fieldstation import channelmeta

    meta = channelmeta.read(channel.id)
    body["metadata"] = meta.metadata
    # ThingSpeak numbers its tags; here a tag's number is its place in the channel's list.
    body["tags"] = [{"id": number, "name": name} for number, name in enumerate(meta.tags, start=1)]
    return _json(body)


@thingspeak_read_bp.get(f"/channels/<int:channel_id>/feeds.{FMT}")
def feeds(channel_id: int, fmt: str) -> Response:
    """The newest entries with every field (``Channel.get()``)."""
    channel, opts = _channel(channel_id), _options()
    numbers = [f.number for f in _fields(channel)]
    return _render(fmt, _channel_json(channel, opts), _feeds(channel, numbers, opts, None), opts.zone)


@thingspeak_read_bp.get(f"/channels/<int:channel_id>/fields/<int:number>.{FMT}")
def field_feed(channel_id: int, number: int, fmt: str) -> Response:
    """The newest entries of one field (``Channel.get_field()``)."""
    channel, opts = _channel(channel_id), _options()
    field = _field(channel, number)
    return _render(fmt, _channel_json(channel, opts), _feeds(channel, [number], opts, field), opts.zone)


@thingspeak_read_bp.get("/channels/<int:channel_id>/feeds/last.<any(json, txt):fmt>")
def last_feed(channel_id: int, fmt: str) -> Response:
    """The newest entry; ``.txt`` is the same JSON with every value quoted (the Arduino library's parse)."""
    channel, opts = _channel(channel_id), _options()
    entry = query.latest_entry(channel.id)
    if entry is None:
        raise NotFound("no entries yet")
    feed = _feed_writer([f.number for f in _fields(channel)], opts)(entry, None)
    if fmt == "txt":
        return Response(json.dumps(feed, separators=(",", ":")), mimetype="text/plain")
    return _json(feed)


@thingspeak_read_bp.get("/channels/<int:channel_id>/fields/<int:number>/last")
@thingspeak_read_bp.get("/channels/<int:channel_id>/fields/<int:number>/last.<any(json, txt):fmt>")
def last_value(channel_id: int, number: int, fmt: str = "txt") -> Response:
    """The newest value of one field: the bare value as the body, or a JSON feed with ``.json``."""
    channel, opts = _channel(channel_id), _options()
    field = _field(channel, number)
    rows = query.field_entries(channel.id, field.id, number, opts.start, opts.end, limit=1)
    if not rows:
        raise NotFound("no value yet")
    if fmt == "txt":
        return Response(_text(rows[0].values[number], opts.round) or "", mimetype="text/plain")
    return _json(_feed_writer([number], opts)(rows[0], None))


@thingspeak_read_bp.get("/channels/<int:channel_id>/fields/<int:number>/last_data_age.<any(json, txt):fmt>")
@thingspeak_read_bp.get("/channels/<int:channel_id>/fields/<int:number>/last_data_age")
def last_data_age(channel_id: int, number: int, fmt: str = "txt") -> Response:
    """Seconds since the field's newest value (``Channel.get_last_data_age()``)."""
    field = _field(_channel(channel_id), number)
    point = query.last_point(field.id)
    if point is None:
        raise NotFound("no value yet")
    age = str(max(0, (now_us() - point.ts) // US))
    if fmt == "txt":
        return Response(age, mimetype="text/plain")
    return _json({"last_data_age": age, "last_data_age_units": "s"})


@thingspeak_read_bp.get("/channels/<int:channel_id>/status.<any(json, xml):fmt>")
def status_feed(channel_id: int, fmt: str) -> Response:
    """The newest status updates."""
    channel, opts = _channel(channel_id), _options()
    rows = query.entries(channel.id, opts.start, opts.end, limit=max(opts.results, 1), with_status=True)
    feeds = [{"created_at": _time(e.ts, opts.zone), "entry_id": e.entry_id, "status": e.status} for e in rows]
    head = {
        "name": channel.name,
        "latitude": _text(channel.latitude) or "0.0",
        "longitude": _text(channel.longitude) or "0.0",
    }
    return _render(fmt, head, feeds, opts.zone)
