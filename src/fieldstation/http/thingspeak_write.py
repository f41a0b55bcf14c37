"""ThingSpeak's write API: ``/update`` (text, ``.json``, ``.xml``) and bulk updates.

Unmodified ThingSpeak clients must work (docs/clients.md §1, §2, §6):
``/update`` answers 200 with the entry id as a plain-text body and a
Content-Length header, ``0`` when the update is refused; a missing or wrong
key is 401 (the Arduino library passes the status through to the sketch).
Refusals carry the reason in an ``X-Fieldstation-Error`` header, which devices
ignore and people debugging them can read.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any
from xml.sax.saxutils import escape

from flask import Blueprint, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from fieldstation import store
from fieldstation.auth import WriteGrant, authorize_write
from fieldstation.errors import BadRequest, FieldstationError, Unauthorized
from fieldstation.http.bodies import decode_form, params, raw_body
from fieldstation.ingest import write_entry
from fieldstation.points import (
    Batch,
    Entry,
    Value,
    check_ts,
    clean_status,
    get_zone,
    normalize_device,
    number_text,
    parse_float,
    parse_location,
    parse_time,
    parse_value,
)
from fieldstation.timeunits import now_us, us_to_datetime

thingspeak_write_bp = Blueprint("thingspeak_write", __name__)

#: ThingSpeak channels have eight fields; the adapter exposes exactly those.
TS_FIELDS = 8
_FIELD_RE = re.compile(r"field([1-9][0-9]*)")
#: Headers that carry the write key (the Arduino library sends the first).
KEY_HEADERS = ("X-THINGSPEAKAPIKEY", "THINGSPEAKAPIKEY")
_KEY_PARAMS = ("api_key", "key", "apikey")
#: ``2018-01-30 10:26:02 -0500`` (ThingSpeak's bulk example): an offset after a space.
_SPACED_OFFSET = re.compile(r"^(.*\d)\s+([+-]\d{2}:?\d{2})$")
#: Columns of one CSV bulk update after its timestamp.
_CSV_COLUMNS = ["field1", "field2", "field3", "field4", "field5", "field6", "field7", "field8"]
_CSV_COLUMNS += ["latitude", "longitude", "elevation", "status"]
_BULK_KEYS = {"created_at", "delta_t", "latitude", "longitude", "elevation", "status"}


# -- parsing (pure: mappings in, entries out) ------------------------------------------------


def ts_time(raw: object, zone: dt.tzinfo = dt.UTC) -> int:
    """A ThingSpeak time: ISO 8601, MySQL ``YYYY-MM-DD hh:mm:ss [±hhmm]`` or epoch -> µs."""
    if isinstance(raw, str):
        match = _SPACED_OFFSET.match(raw.strip())
        if match:
            raw = f"{match[1]}{match[2]}"
    elif not isinstance(raw, int | float) or isinstance(raw, bool):
        raise BadRequest("times must be strings or numbers", code="bad_time")
    return parse_time(raw, zone)


def _clean(raw: str) -> str:
    """Drop the trailing newline the 1.3.x Arduino library appends to its body."""
    return raw.rstrip("\r\n")


def entry_from_params(values: Mapping[str, str]) -> Entry:
    """One ``/update``: field1..8, lat, long, elevation, status, created_at, timezone.

    Blank values are ThingSpeak's "not set"; other parameters (``headers``,
    ``api_key``, …) are ignored, as ThingSpeak does.

    :raise BadRequest: a field outside 1..8, a bad value, time or location, or nothing to store.
    """
    fields: dict[int, Value] = {}
    for name, raw in values.items():
        match = _FIELD_RE.fullmatch(name)
        if match is None or not _clean(raw).strip():
            continue
        number = int(match[1])
        if number > TS_FIELDS:
            raise BadRequest(f"{name}: ThingSpeak fields are field1..field8", code="unknown_field")
        fields[number] = parse_value(_clean(raw))
    given = {k: _clean(v) for k, v in values.items() if _clean(v).strip()}
    zone = get_zone(given.get("timezone"))
    return _entry(
        fields,
        ts=ts_time(given["created_at"], zone) if "created_at" in given else None,
        status=given.get("status"),
        latitude=given.get("lat"),
        longitude=given.get("long"),
        elevation=given.get("elevation"),
    )


def _entry(
    fields: dict[int, Value],
    *,
    ts: int | None,
    status: object,
    latitude: object,
    longitude: object,
    elevation: object,
) -> Entry:
    lat = _location(latitude, "latitude")
    lon = _location(longitude, "longitude")
    elev = None if elevation is None else parse_float(elevation, "elevation")
    text = clean_status(status)
    if not fields and text is None and lat is None and lon is None and elev is None:
        raise BadRequest("nothing to update: send field1..field8, status or a location", code="empty")
    return Entry(fields, ts=ts, status=text, latitude=lat, longitude=lon, elevation=elev)


def _location(raw: object, name: str) -> float | None:
    return None if raw is None else parse_location(raw, name)


def entries_from_bulk_json(body: object, now: int, limit: int) -> list[Entry]:
    """``{"write_api_key": …, "updates": [{created_at | delta_t, field1…, status, …}]}`` -> entries.

    :raise BadRequest: not that shape, a bad value, or more than ``limit`` updates.
    """
    if not isinstance(body, dict) or not isinstance(body.get("updates"), list):
        raise BadRequest('body must be {"write_api_key": …, "updates": [ … ]}', code="invalid_body")
    updates: list[Any] = body["updates"]
    _check_count(len(updates), limit)
    rows: list[tuple[Entry, float | None]] = []
    for index, update in enumerate(updates):
        if not isinstance(update, dict):
            raise BadRequest(f"updates[{index}] must be an object", code="invalid_body")
        try:
            rows.append(_bulk_json_update(update))
        except BadRequest as exc:
            raise BadRequest(f"updates[{index}]: {exc.message}", code=exc.code) from None
    return _anchor(rows, now)


def _bulk_json_update(update: dict[str, Any]) -> tuple[Entry, float | None]:
    fields: dict[int, Value] = {}
    for name, raw in update.items():
        match = _FIELD_RE.fullmatch(name)
        if match is None:
            if name not in _BULK_KEYS:
                raise BadRequest(f"unknown member {name[:40]!r}", code="invalid_body")
            continue
        if int(match[1]) > TS_FIELDS:
            raise BadRequest(f"{name}: ThingSpeak fields are field1..field8", code="unknown_field")
        if raw is not None and raw != "":
            fields[int(match[1])] = parse_value(raw)
    created, delta = update.get("created_at"), update.get("delta_t")
    if (created is None) == (delta is None):
        raise BadRequest("give exactly one of created_at and delta_t", code="bad_time")
    entry = _entry(
        fields,
        ts=None if created is None else ts_time(created),
        status=update.get("status"),
        latitude=update.get("latitude"),
        longitude=update.get("longitude"),
        elevation=update.get("elevation"),
    )
    return entry, None if delta is None else _delta(delta)


def entries_from_bulk_csv(form: Mapping[str, str], now: int, limit: int) -> list[Entry]:
    """``time_format=absolute|relative&updates=TIME,f1,…,f8,lat,long,elev,status|…`` -> entries.

    :raise BadRequest: missing parameters, bad columns or values, or more than ``limit`` updates.
    """
    time_format = form.get("time_format", "absolute").strip()
    if time_format not in ("absolute", "relative"):
        raise BadRequest("time_format must be absolute or relative", code="bad_time")
    text = _clean(form.get("updates", ""))
    if not text.strip():
        raise BadRequest("updates is required", code="empty")
    lines = text.split("|")
    _check_count(len(lines), limit)
    rows: list[tuple[Entry, float | None]] = []
    for index, line in enumerate(lines):
        try:
            rows.append(_csv_update(line, time_format == "relative"))
        except BadRequest as exc:
            raise BadRequest(f"update {index + 1}: {exc.message}", code=exc.code) from None
    return _anchor(rows, now)


def _csv_update(line: str, relative: bool) -> tuple[Entry, float | None]:
    when, *columns = line.split(",", len(_CSV_COLUMNS))
    if len(columns) > len(_CSV_COLUMNS):  # pragma: no cover - split caps the count
        raise BadRequest("too many columns", code="invalid_body")
    cells = dict(zip(_CSV_COLUMNS, columns, strict=False))
    fields = {i: parse_value(cells[f"field{i}"]) for i in range(1, 9) if cells.get(f"field{i}", "").strip()}
    entry = _entry(
        fields,
        ts=None if relative else ts_time(when),
        status=cells.get("status") or None,
        latitude=cells.get("latitude") or None,
        longitude=cells.get("longitude") or None,
        elevation=cells.get("elevation") or None,
    )
    return entry, _delta(when) if relative else None


def _delta(raw: object) -> float:
    seconds = parse_float(raw, "delta_t")
    if not 0 <= seconds <= 10 * 365 * 86_400:
        raise BadRequest("delta_t must be 0 .. 10 years of seconds", code="bad_time")
    return seconds


def _anchor(rows: list[tuple[Entry, float | None]], now: int) -> list[Entry]:
    """Give relative updates absolute times: the last one is ``now``, each earlier one is
    its successor's time minus the successor's delta (ThingSpeak: "seconds since the last entry").

    :raise BadRequest: absolute and relative times mixed in one request, or deltas that add up
        to a time before 1900 (each delta is bounded; their sum is not).
    """
    deltas = [delta for _, delta in rows]
    if all(d is None for d in deltas):
        return [entry for entry, _ in rows]
    if any(d is None for d in deltas):
        raise BadRequest("use created_at or delta_t for all updates, not both", code="bad_time")
    times = [now]
    for delta in reversed(deltas[1:]):
        times.append(times[-1] - round(float(delta or 0) * 1_000_000))
    check_ts(times[-1])
    times.reverse()
    return [_with_ts(entry, ts) for (entry, _), ts in zip(rows, times, strict=True)]


def _with_ts(entry: Entry, ts: int) -> Entry:
    return Entry(entry.values, ts, entry.status, entry.latitude, entry.longitude, entry.elevation)


def _check_count(count: int, limit: int) -> None:
    if count == 0:
        raise BadRequest("updates is empty", code="empty")
    if count > limit:
        raise BadRequest(f"at most {limit} updates per request", code="too_many_entries")


# -- authorisation ---------------------------------------------------------------------------


def request_key(values: Mapping[str, object]) -> str | None:
    """The write key: X-THINGSPEAKAPIKEY/THINGSPEAKAPIKEY header, else api_key/key/apikey."""
    return write_key(values, [request.headers.get(header) for header in KEY_HEADERS])


def write_key(values: Mapping[str, object], key_headers: list[str | None]) -> str | None:
    """The write key of :func:`request_key`, from the values of its two headers and the parameters."""
    for header in key_headers:
        if header:
            return header.strip()
    for name in ("write_api_key", *_KEY_PARAMS):
        value = values.get(name)
        if isinstance(value, str) and value.strip():
            return _clean(value).strip()
    return None


def request_device(values: Mapping[str, object]) -> str | None:
    """The optional ``mac`` parameter, normalised.

    :raise BadRequest: not a device id.
    """
    mac = values.get("mac")
    return normalize_device(_clean(mac)) if isinstance(mac, str) and mac.strip() else None


def authorize(values: Mapping[str, object], channel_id: int | None = None) -> WriteGrant:
    """Authorise the request's key and optional ``mac`` device; check it writes ``channel_id``.

    :raise Unauthorized: missing, wrong, revoked or read key, or a key of another channel.
    :raise Forbidden: device not allowed.
    """
    grant = authorize_write(request_key(values), request_device(values))
    if channel_id is not None and grant.channel_id != channel_id:
        raise Unauthorized("this write API key is not for this channel")
    return grant


# -- views -----------------------------------------------------------------------------------


@thingspeak_write_bp.route("/update", methods=["GET", "POST"])
@thingspeak_write_bp.route("/update.<any(json, xml):fmt>", methods=["GET", "POST"])
def update(fmt: str = "") -> Response:
    """Write one entry; answer its id (text), the entry (JSON/XML), or ``0`` when refused."""
    if request.method == "HEAD":  # link checkers and prefetchers must not write
        raise BadRequest("HEAD does not write; use GET or POST", code="head")
    values = params()
    device = request_device(values)
    try:
        entry = entry_from_params(values)
    except FieldstationError:
        authorize(values)  # a bad key or device still answers 401/403 before the content's refusal
        raise
    # The key check and the write share one round trip where they can (ingest.write_entry).
    grant, result = write_entry(request_key(values), device, entry)
    stored = result.entries[0]
    if fmt == "json":
        response = jsonify(entry_json(grant.channel_id, stored.entry_id, stored.ts, entry))
    elif fmt == "xml":
        xml = entry_xml(grant.channel_id, stored.entry_id, stored.ts, entry)
        response = Response(xml, mimetype="application/xml")
    else:
        response = Response(str(stored.entry_id), mimetype="text/plain")
    if not stored.created:
        response.headers[REPLACED[0]] = REPLACED[1]
    return response


#: Added to ``/update``'s answer when its ``created_at`` was an existing entry's time, whose values
#: it replaced (the body stays ThingSpeak's: that entry's id).
REPLACED = ("X-Fieldstation-Replaced", "1")


@thingspeak_write_bp.post("/channels/<int:channel_id>/bulk_update.json")
def bulk_update_json(channel_id: int) -> tuple[Response, int]:
    """Write many entries from ThingSpeak's bulk JSON; 202 as ThingSpeak answers."""
    body = _json_object(raw_body())
    grant = authorize({**request.args.to_dict(), **body}, channel_id)
    limit = _limit()
    entries = entries_from_bulk_json(body, now_us(), limit)
    store.write(Batch(grant.channel_id, entries, device=grant.device))
    return jsonify({"success": True}), 202


@thingspeak_write_bp.post("/channels/<int:channel_id>/bulk_update.csv")
def bulk_update_csv(channel_id: int) -> tuple[Response, int]:
    """Write many entries from ThingSpeak's bulk CSV form; 202 as ThingSpeak answers."""
    form = {**dict(decode_form(request.query_string, "query string")), **dict(decode_form(raw_body()))}
    grant = authorize(form, channel_id)
    entries = entries_from_bulk_csv(form, now_us(), _limit())
    store.write(Batch(grant.channel_id, entries, device=grant.device))
    return jsonify({"success": True}), 202


def _limit() -> int:
    from flask import current_app

    return int(current_app.config["MAX_BATCH_ENTRIES"])


def _json_object(data: bytes) -> dict[str, Any]:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise BadRequest("body is not valid JSON", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest('body must be {"write_api_key": …, "updates": [ … ]}', code="invalid_body")
    return body


# -- formatting ------------------------------------------------------------------------------


def _iso(ts: int) -> str:
    return us_to_datetime(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: Value | None) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return number_text(value)


def entry_json(channel_id: int, entry_id: int, ts: int, entry: Entry) -> dict[str, Any]:
    """The entry as ThingSpeak's ``/update.json`` answers it (values as strings)."""
    body: dict[str, Any] = {"channel_id": channel_id, "created_at": _iso(ts), "entry_id": entry_id}
    for number in range(1, TS_FIELDS + 1):
        body[f"field{number}"] = _text(entry.values.get(number))
    body["latitude"] = _text(entry.latitude)
    body["longitude"] = _text(entry.longitude)
    body["elevation"] = _text(entry.elevation)
    body["status"] = entry.status
    return body


def entry_xml(channel_id: int, entry_id: int, ts: int, entry: Entry) -> str:
    """The entry as ThingSpeak's ``/update.xml`` answers it."""
    body = entry_json(channel_id, entry_id, ts, entry)
    typed = {"channel_id": "integer", "entry_id": "integer", "created_at": "dateTime"}
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', "<feed>"]
    for key, value in body.items():
        tag = key.replace("_", "-")
        kind = f' type="{typed[key]}"' if key in typed else ""
        if value is None:
            parts.append(f'<{tag} nil="true"/>')
        else:
            parts.append(f"<{tag}{kind}>{escape(str(value))}</{tag}>")
    parts.append("</feed>")
    return "\n".join(parts) + "\n"


# -- errors the ThingSpeak way ---------------------------------------------------------------

_TS_ERRORS = {
    400: ("error_bad_request", "Bad Request"),
    401: ("error_auth_required", "Authorization Required"),
    403: ("error_forbidden", "Forbidden"),
    404: ("error_resource_not_found", "Resource Not Found"),
    413: ("error_request_too_large", "Request Entity Too Large"),
    429: ("error_too_many_requests", "Too Many Requests"),
}


def _refusal(status: int, message: str) -> Response:
    """``/update`` refusals: auth and size errors keep their status, others are 200 ``0``.

    Bulk updates answer ThingSpeak's JSON error object with the status.
    """
    if request.path.endswith(("bulk_update.json", "bulk_update.csv")):
        code, title = _TS_ERRORS.get(status, ("error_bad_request", "Bad Request"))
        body = {"status": str(status), "error": {"error_code": code, "message": title, "details": message}}
        response = jsonify(body)
        response.status_code = status
    else:
        response = Response("0", mimetype="text/plain")
        response.status_code = status if status in (401, 403, 413) else 200
    response.headers["X-Fieldstation-Error"] = _header_safe(message)
    return response


def _header_safe(message: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f]", " ", message.encode("ascii", "replace").decode("ascii"))[:300]


@thingspeak_write_bp.errorhandler(FieldstationError)
def _domain_error(exc: FieldstationError) -> Response:
    return _refusal(exc.status, exc.message)


@thingspeak_write_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _refusal(exc.code or 400, exc.description or exc.name)
