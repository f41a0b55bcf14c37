"""The seed's path URL, as the original weather-station firmware sends it.

``GET|POST /update/API_key=<key>/mac=<device>/field=<n>/data=<value>`` stores
one reading in field ``n`` of the key's channel, stamped with the server time.
Answers like ThingSpeak's ``/update``: 200 with the entry id as plain text;
errors are plain text with their 4xx status.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from fieldstation.errors import BadRequest, FieldstationError
from fieldstation.ingest import write_entry
from fieldstation.points import Entry, Value, normalize_device, parse_value, plain_int

seed_bp = Blueprint("seed", __name__)

_PATH_RE = re.compile(r"API_key=([^/]*)/mac=([^/]*)/field=([^/]*)/data=(.*)", re.IGNORECASE | re.DOTALL)


@dataclass(frozen=True, slots=True)
class SeedReading:
    """What one seed URL says: key, device, field number and value."""

    key: str
    device: str
    field: int
    value: Value


def parse_seed_path(rest: str) -> SeedReading:
    """Parse the part after ``/update/``.

    :raise BadRequest: not the seed's shape, a bad device id, field number or value.
    """
    match = _PATH_RE.fullmatch(rest)
    if match is None:
        raise BadRequest(
            "expected /update/API_key=<key>/mac=<device>/field=<n>/data=<value>", code="bad_path"
        )
    key, device, field, data = match.groups()
    if not key:
        raise BadRequest("API_key is empty", code="bad_path")
    number = plain_int(field, 5)
    if number is None or not 1 <= number <= 10_000:
        raise BadRequest("field must be a field number (1, 2, …)", code="unknown_field")
    if not data.strip():
        raise BadRequest("data is empty", code="bad_value")
    return SeedReading(key, normalize_device(device), number, parse_value(data))


@seed_bp.route("/update/<path:rest>", methods=["GET", "POST"])
def seed_update(rest: str) -> Response:
    """Store one reading from the path; answer the entry id."""
    if request.method == "HEAD":  # link checkers and prefetchers must not write
        raise BadRequest("HEAD does not write; use GET or POST", code="head")
    request.get_data()  # the body is unused, but one over MAX_CONTENT_LENGTH is still a 413
    reading = parse_seed_path(_strict(rest))
    _grant, result = write_entry(reading.key, reading.device, Entry({reading.field: reading.value}))
    return Response(str(result.entries[0].entry_id), mimetype="text/plain")


def _strict(rest: str) -> str:
    """The routed path, refused when its bytes are not UTF-8 (werkzeug decodes them with
    replacement characters, which would be stored as the reading's text)."""
    try:
        request.environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8")
    except UnicodeError:
        raise BadRequest("the path is not valid UTF-8", code="bad_encoding") from None
    return rest


@seed_bp.errorhandler(FieldstationError)
def _domain_error(exc: FieldstationError) -> Response:
    return Response(exc.message + "\n", status=exc.status, mimetype="text/plain")


@seed_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return Response(f"{exc.description or exc.name}\n", status=exc.code or 400, mimetype="text/plain")
