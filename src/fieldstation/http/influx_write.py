"""InfluxDB 1.x writes: ``POST /write`` (line protocol) and ``GET|HEAD /ping``.

Telegraf, the ``influxdb`` Python client and Influx-speaking firmware write
here (../shared/PROTOCOLS.md §3, §4, §6). ``db`` names the channel by name or
id; the password of Basic auth (or ``p``, or ``Authorization: Token``) is the
channel's write key. Each measurement + tag set + field key is a field of the
channel, created on first write. Answers are InfluxDB's: 204 on success,
``{"error": …}`` with 400 (a partial write names the rejected lines), 401,
404 ``database not found`` and 413.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterable

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from fieldstation import lineprotocol, store
from fieldstation.auth import authorize_write
from fieldstation.errors import BadRequest, FieldstationError, NotFound, Unauthorized
from fieldstation.http.bodies import raw_body
from fieldstation.points import Batch, Entry, Value, normalize_device

influx_write_bp = Blueprint("influx_write", __name__)

#: The InfluxDB version we answer as; clients only check that the header exists.
INFLUXDB_VERSION = "1.8.10"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def request_key() -> str | None:
    """The key from Basic auth (password), ``p``, or ``Authorization: Token [user:]key``.

    ``/write`` and ``/query`` share it; ``p`` is read from the URL only, never from a body.

    :raise Unauthorized: an Authorization header that cannot be parsed.
    """
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise Unauthorized("unable to parse authentication credentials") from None
        return decoded.partition(":")[2] or None
    if scheme.lower() == "token":
        return value.strip().rpartition(":")[2] or None
    return request.args.get("p") or None


def field_names(points: Iterable[lineprotocol.Point]) -> list[list[str]]:
    """Per point, the channel field name of each of its values (``<series> <field key>``).

    A body repeats few series many times, so names are built once per series and key.
    """
    cache: dict[tuple[str, tuple[tuple[str, str], ...], str], str] = {}
    names = []
    for point in points:
        mine = []
        for key, _ in point.fields:
            ident = (point.measurement, point.tags, key)
            name = cache.get(ident)
            if name is None:
                name = cache[ident] = point.field_name(key)
            mine.append(name)
        names.append(mine)
    return names


def batch_for(
    channel_id: int, points: list[lineprotocol.Point], names: list[list[str]], numbers: dict[str, int]
) -> Batch:
    """Points -> one entry per timestamp; points without one share the server time, as in InfluxDB.

    A later point's value for the same field and time wins, as InfluxDB overwrites.
    """
    by_ts: dict[int | None, dict[int, Value]] = {}
    for point, point_names in zip(points, names, strict=True):
        values = by_ts.setdefault(point.ts, {})
        for name, (_, value) in zip(point_names, point.fields, strict=True):
            values[numbers[name]] = value
    return Batch(channel_id, [Entry(values, ts) for ts, values in by_ts.items()])


@influx_write_bp.route("/ping", methods=["GET", "HEAD"])
def ping() -> Response:
    """204 with X-Influxdb-Version, which ``InfluxDBClient.ping()`` returns."""
    if request.args.get("verbose", "").lower() in ("true", "1"):
        response = jsonify({"version": INFLUXDB_VERSION})
    else:
        response = Response(status=204)
    response.headers["X-Influxdb-Version"] = INFLUXDB_VERSION
    return response


@influx_write_bp.post("/write")
def write() -> Response:
    """Store line protocol; good lines are written even when others are rejected (partial write)."""
    mac = request.args.get("mac")
    grant = authorize_write(request_key(), normalize_device(mac) if mac else None)
    database = request.args.get("db", "")
    if not database:
        raise BadRequest("database is required")
    if not store.channel_matches(grant.channel_id, database):
        raise NotFound(f'database not found: "{database}"')
    try:
        text = raw_body().decode("utf-8")
        parsed = lineprotocol.parse(text, request.args.get("precision", ""))
    except UnicodeDecodeError:
        raise BadRequest("unable to parse body: not UTF-8") from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    errors = "\n".join(str(r) for r in parsed.rejected)
    if not parsed.points:
        if errors:
            raise BadRequest(errors)
        return _no_content()
    names = field_names(parsed.points)
    limit = int(current_app.config["MAX_FIELDS_PER_CHANNEL"])
    numbers = store.ensure_fields(grant.channel_id, {n for ns in names for n in ns}, limit=limit)
    store.write(batch_for(grant.channel_id, parsed.points, names, numbers))
    if errors:
        raise BadRequest(f"partial write: {errors} dropped={len(parsed.rejected)}")
    return _no_content()


def _no_content() -> Response:
    response = Response(status=204)
    response.headers["X-Influxdb-Version"] = INFLUXDB_VERSION
    return response


def _error(status: int, message: str) -> Response:
    response = jsonify({"error": message})
    response.status_code = status
    response.headers["X-Influxdb-Version"] = INFLUXDB_VERSION
    first_line = message.split("\n", 1)[0][:300].encode("ascii", "replace").decode()
    response.headers["X-Influxdb-Error"] = _CONTROL.sub(" ", first_line)
    return response


@influx_write_bp.errorhandler(FieldstationError)
def _domain_error(exc: FieldstationError) -> Response:
    message = "authorization failed" if exc.status == 401 and "parse" not in exc.message else exc.message
    return _error(exc.status, message)


@influx_write_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _error(exc.code or 400, (exc.description or exc.name).lower())
