"""InfluxDB 1.8's 2.x compatibility API: ``POST /api/v2/write``, ``GET /health``, ``/api/v2/query``.

InfluxDB 1.8 added these so that 2.x clients (``influxdb-client`` for Python,
Telegraf's ``influxdb_v2`` output, the Arduino/ESP32 client in 2.x mode, Home
Assistant's and Node-RED's v2 settings) can write to a 1.x server:
``bucket`` is ``database[/retention policy]``, ``org`` is ignored,
``precision`` is one of ``ns``, ``us``, ``ms``, ``s`` and the token is
``USER:PASSWORD`` (here the password is the write key; a bare key works too).
Writes are stored by ``/write``'s own :func:`~fieldstation.http.influx_write.store_lines`
and answered as ``/write`` answers them. Flux is not InfluxQL: ``/api/v2/query``
says so with 501 instead of a 404 that looks like a wrong URL.
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from fieldstation.errors import BadRequest, FieldstationError, NotFound
from fieldstation.http.bodies import raw_body
from fieldstation.http.influx_write import (
    INFLUXDB_VERSION,
    domain_error,
    no_content,
    partial_write,
    request_key,
    store_lines,
)

influx_v2_bp = Blueprint("influx_v2", __name__)

#: The v2 API's precisions, as ``/write`` spells them.
V2_PRECISIONS = {"": "", "ns": "n", "us": "u", "ms": "ms", "s": "s"}


def bucket_target(bucket: str) -> str:
    """The database a bucket names: ``db``, ``db/`` and ``db/rp`` all write to ``db``.

    Retention policies are not kept apart here (``/write`` ignores ``rp`` too).

    :raise NotFound: no bucket (InfluxDB 1.8 answers 404 for a bucket it cannot map).
    """
    database = bucket.partition("/")[0]
    if not database:
        raise NotFound("bucket not found")
    return database


@influx_v2_bp.post("/api/v2/write")
def write_v2() -> Response:
    """Line protocol into ``bucket``'s channel; the answers are ``/write``'s."""
    precision = request.args.get("precision", "")
    if precision not in V2_PRECISIONS:
        raise BadRequest(f"invalid precision {precision[:20]!r} (use ns, us, ms or s)")
    args = {"db": bucket_target(request.args.get("bucket", "")), "precision": V2_PRECISIONS[precision]}
    limit = int(current_app.config["MAX_FIELDS_PER_CHANNEL"])
    rejected = store_lines(args, request_key(), raw_body, limit)
    if rejected:
        raise partial_write(rejected)
    return no_content()


@influx_v2_bp.get("/health")
def health() -> Response:
    """InfluxDB 1.8's health check (``influxdb-client``'s ``health()``, Telegraf, load balancers)."""
    response = jsonify(
        {
            "name": "influxdb",
            "message": "ready for queries and writes",
            "status": "pass",
            "checks": [],
            "version": INFLUXDB_VERSION,
        }
    )
    response.headers["X-Influxdb-Version"] = INFLUXDB_VERSION
    return response


@influx_v2_bp.route("/api/v2/query", methods=["GET", "POST"])
def flux_query() -> Response:
    """Flux is not supported: 501 in the v2 API's error shape, pointing at InfluxQL on ``/query``."""
    response = jsonify(
        {
            "code": "not implemented",
            "message": "Flux queries are not supported: send InfluxQL to /query "
            "(GET or POST, parameters db and q), as InfluxDB 1.x clients and Grafana's InfluxQL mode do",
        }
    )
    response.status_code = 501
    response.headers["X-Influxdb-Version"] = INFLUXDB_VERSION
    return response


@influx_v2_bp.errorhandler(FieldstationError)
def _domain_error(exc: FieldstationError) -> Response:
    return domain_error(exc)


@influx_v2_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return domain_error(FieldstationError((exc.description or exc.name).lower(), status=exc.code or 400))
