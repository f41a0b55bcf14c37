"""InfluxDB 1.x ``GET|POST /query``: the InfluxQL subset for the ``influxdb`` client and Grafana.

Credentials as InfluxDB 1.x takes them: Basic auth (the password is a key),
``u``/``p`` parameters, or ``Authorization: Token <key>``. Answers are
InfluxDB's: 200 ``{"results": […]}`` (a statement's own error inside its
result), 400 ``{"error": "error parsing query: …"}``, 401
``{"error": "authorization failed"}``.
"""

from __future__ import annotations

from flask import Blueprint, Response, request
from werkzeug.exceptions import HTTPException

from fieldstation import influx_run, influxql
from fieldstation.errors import FieldstationError
from fieldstation.extensions import db
from fieldstation.http.influx_write import INFLUXDB_VERSION, request_key
from fieldstation.jsonprovider import encode
from fieldstation.timeunits import now_us

influx_query_bp = Blueprint("influx_query", __name__)


@influx_query_bp.route("/query", methods=["GET", "POST"])
def run_query() -> Response:
    """Parse ``q`` (URL or form body), run each statement, answer InfluxDB's JSON."""
    text = request.values.get("q", "")
    statements = influxql.parse(text, now_us())
    epoch = request.values.get("epoch") or None
    body = influx_run.run(statements, request_key(), request.values.get("db", ""), epoch)
    return _json(200, body)


def _json(status: int, body: object) -> Response:
    response = Response(encode(body), status=status, mimetype="application/json")
    response.headers["X-Influxdb-Version"] = INFLUXDB_VERSION
    return response


@influx_query_bp.errorhandler(FieldstationError)
def _domain_error(exc: FieldstationError) -> Response:
    db.session.rollback()
    if exc.status == 401:
        return _json(401, {"error": "authorization failed"})
    return _json(400, {"error": exc.message})


@influx_query_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return _json(exc.code or 400, {"error": (exc.description or exc.name).lower()})
