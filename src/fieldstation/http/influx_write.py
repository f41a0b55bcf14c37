"""InfluxDB 1.x writes: ``POST /write`` (line protocol) and ``GET|HEAD /ping``.

Telegraf, the ``influxdb`` Python client and Influx-speaking firmware write
here (docs/clients.md §3, §4, §6). ``db`` names the channel by name or
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
from collections.abc import Callable, Mapping

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from fieldstation import lineprotocol, manage, store
from fieldstation.auth import authorize_write
from fieldstation.errors import BadRequest, FieldstationError, NotFound, Unauthorized
from fieldstation.http.bodies import raw_body
from fieldstation.ingest import write_entry
from fieldstation.points import Batch, Entry, SeriesValues, normalize_device
from fieldstation.seriesnames import write_target

influx_write_bp = Blueprint("influx_write", __name__)

#: The InfluxDB version we answer as; clients only check that the header exists.
#: The InfluxDB release whose 1.x HTTP API these endpoints answer as (clients read the header).
INFLUXDB_VERSION = "1.8.10"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def request_key() -> str | None:
    """The request's key (:func:`key_from`); ``/write`` and ``/query`` share it.

    :raise Unauthorized: an Authorization header that cannot be parsed.
    """
    return key_from(request.headers.get("Authorization", ""), request.args.get("p"))


def key_from(authorization: str, password: str | None) -> str | None:
    """The key from Basic auth (password), ``Authorization: Token [user:]key``, else ``password``.

    ``password`` is the URL's ``p``, never a body's. Takes no request, so the
    device hot path (``http.hotpath``) reads keys exactly as the views do.

    :raise Unauthorized: an Authorization header that cannot be parsed.
    """
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise Unauthorized("unable to parse authentication credentials") from None
        return decoded.partition(":")[2] or None
    if scheme.lower() == "token":
        return value.strip().rpartition(":")[2] or None
    return password or None


def batch_for(channel_id: int, body: lineprotocol.Columns, numbers: dict[str, int]) -> Batch:
    """The body's columns as the channel's series; lines without a timestamp share the server's.

    ``numbers`` maps the body's field names to the channel's field numbers.
    Entries keep the order in which their timestamps first appear.
    """
    series: dict[int, SeriesValues] = {numbers[name]: column for name, column in body.values.items()}
    return Batch.of_series(channel_id, body.times, series)


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
    limit = int(current_app.config["MAX_FIELDS_PER_CHANNEL"])
    rejected = store_lines(request.args, request_key(), raw_body, limit)
    if rejected:
        raise partial_write(rejected)
    return no_content()


def store_lines(
    args: Mapping[str, str], key: str | None, read_body: Callable[[], bytes], max_fields: int
) -> list[lineprotocol.Rejected]:
    """Store a ``/write`` request's lines; the rejected ones, when the good ones were stored.

    Every refusal raises and writes nothing, so a caller may hand the request
    to someone else (``http.hotpath`` falls back to the Flask view). The body is
    read only after the key and ``db`` passed, so their errors come first.

    :raise Unauthorized, Forbidden: the key (and ``mac``), as :func:`authorize_write` rules.
    :raise BadRequest: no ``db``, a body not UTF-8, an unknown precision, no good line, too many fields.
    :raise NotFound: ``db`` is not the key's channel.
    """
    mac = args.get("mac")
    device = normalize_device(mac) if mac else None
    grant = authorize_write(key, device)
    database = args.get("db", "")
    if not database:
        raise BadRequest("database is required")
    channel = manage.channel_fields(grant.channel_id)
    if channel is None or not channel.named(grant.channel_id, database):
        raise NotFound(f'database not found: "{database}"')
    try:
        text = read_body().decode("utf-8")
        parsed = lineprotocol.parse_columns(text, args.get("precision", ""))
    except UnicodeDecodeError:
        raise BadRequest("unable to parse body: not UTF-8") from None
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if not parsed.lines:
        if parsed.rejected:
            raise BadRequest("\n".join(str(r) for r in parsed.rejected))
        return []
    numbers = channel.numbers
    if not parsed.values.keys() <= numbers.keys():  # new series, or ones that write to plain fields
        targets = {name: write_target(name, channel.name, numbers) for name in parsed.values}
        wanted = set(targets.values())
        if not wanted <= numbers.keys():  # create the missing fields first
            numbers = manage.ensure_fields(grant.channel_id, wanted, limit=max_fields)
        numbers = {name: numbers[target] for name, target in targets.items()}
    if parsed.times.keys() == {None}:
        # One entry at the server's time (firmware posting a point per request): the
        # single-reading path, one statement on PostgreSQL instead of eight.
        values = {numbers[name]: column[None] for name, column in parsed.values.items()}
        write_entry(key, device, Entry(values), grant=grant)
    else:
        batch = batch_for(grant.channel_id, parsed, numbers)
        batch.device = grant.device  # the device seen (issue 19)
        store.write(batch)
    return parsed.rejected


def partial_write(rejected: list[lineprotocol.Rejected]) -> BadRequest:
    """InfluxDB's answer to a write that stored some lines and dropped these."""
    errors = "\n".join(str(r) for r in rejected)
    return BadRequest(f"partial write: {errors} dropped={len(rejected)}")


def no_content() -> Response:
    """InfluxDB's answer to a write (``http.hotpath`` gives it too)."""
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
def domain_error(exc: FieldstationError) -> Response:
    """InfluxDB's error body; ``http.hotpath`` answers a partial write with it too (needs an app context)."""
    message = "authorization failed" if exc.status == 401 and "parse" not in exc.message else exc.message
    return _error(exc.status, message)


@influx_write_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _error(exc.code or 400, (exc.description or exc.name).lower())
