"""``/healthz``, ``/readyz`` and ``/metrics``, and the request metrics of the web process (issue 19).

``/healthz`` says the process answers. ``/readyz`` says it can do its work:
the database answers and its schema is at the migrations' head (503 with the
reason otherwise, so a load balancer or systemd's watchdog can hold traffic
back during an outage or before ``fieldstation db upgrade``). ``/metrics``
answers in Prometheus's text format; ``METRICS_ACCESS`` limits who may scrape
it: ``loopback`` (the default), ``open``, or ``token`` (``Authorization:
Bearer`` with ``METRICS_TOKEN``).

:class:`RequestMetrics` wraps the whole WSGI app, the device hot path
included: it times every request by endpoint family and names the protocol
that ``writehooks`` counts a stored write under.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import time
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request
from sqlalchemy import inspect, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from werkzeug.exceptions import HTTPException

from fieldstation import metrics
from fieldstation.errors import FieldstationError
from fieldstation.extensions import db
from fieldstation.schema import HEAD

health_bp = Blueprint("health", __name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

#: (path pattern, endpoint family, protocol of a write) in order; the first match wins.
_FAMILIES = [
    (re.compile(r"^/update(?:[./]|$)"), "write", "thingspeak"),
    (re.compile(r"^/channels/\d+/bulk_update"), "write", "thingspeak"),
    (re.compile(r"^/write$"), "write", "influxdb"),
    (re.compile(r"^/api/v1/channels/\d+/entries$"), "write", "json"),
    (re.compile(r"^/dashboard/channels/\d+/import$"), "dashboard", "csv"),
    (re.compile(r"^/query$"), "query", "other"),
    (
        re.compile(
            r"^/api/v1/channels/\d+/(?:readings|buckets|latest|entries/latest|export|fields/\d+/export)"
        ),
        "read",
        "other",
    ),
    (re.compile(r"^/channels/\d+/(?:charts/)"), "chart", "other"),
    (re.compile(r"^/channels/"), "read", "other"),
    (re.compile(r"^/api/v1/"), "manage", "other"),
    (re.compile(r"^/(?:dashboard|$)"), "dashboard", "other"),
    (re.compile(r"^/(?:healthz|readyz|metrics|ping)$"), "health", "other"),
]


@lru_cache(maxsize=4096)
def classify(path: str) -> tuple[str, str]:
    """(endpoint family, write protocol) of a request path."""
    for pattern, family, protocol in _FAMILIES:
        if pattern.match(path):
            return family, protocol
    return "other", "other"


class RequestMetrics:
    """WSGI middleware: request latency by family, and the protocol a write is counted under."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start = time.perf_counter()
        path = environ.get("PATH_INFO", "")
        family, protocol = classify(path) if len(path) < 512 else ("other", "other")
        token = metrics.PROTOCOL.set(protocol)
        timer = metrics.latency(family)
        try:
            body = self.app(environ, start_response)
        except BaseException:
            timer.observe(time.perf_counter() - start)
            raise
        finally:
            metrics.PROTOCOL.reset(token)
        if isinstance(body, list):  # answered already (the device hot path): no wrapper to pay for
            timer.observe(time.perf_counter() - start)
            return body
        return _Timed(body, timer, start)


class _Timed:
    """A response body that observes its request's latency when the server closes it."""

    def __init__(self, body: Iterable[bytes], timer: Any, start: float) -> None:
        self.body, self.timer, self.start = body, timer, start

    def __iter__(self) -> Iterator[bytes]:
        return iter(self.body)

    def close(self) -> None:
        try:
            close = getattr(self.body, "close", None)
            if close is not None:
                close()
        finally:
            self.timer.observe(time.perf_counter() - self.start)


def install(app: Flask) -> None:
    """Time every request and count every refusal; call last in ``create_app`` (outermost layer)."""
    handle = app.handle_user_exception

    def counting(exc: Exception) -> Any:
        if isinstance(exc, FieldstationError):
            metrics.REFUSALS.labels(exc.code).inc()
        elif isinstance(exc, HTTPException) and exc.code and 400 <= exc.code < 500:
            metrics.REFUSALS.labels((exc.name or "error").lower().replace(" ", "_")).inc()
        return handle(exc)

    app.handle_user_exception = counting  # type: ignore[method-assign,assignment]
    app.wsgi_app = RequestMetrics(app.wsgi_app)  # type: ignore[method-assign]


@health_bp.get("/healthz")
def healthz() -> Response:
    """The process is alive and answers."""
    return jsonify({"status": "ok"})


def not_ready() -> str | None:
    """Why this process cannot serve (None: it can): the database, or its schema."""
    rows: list[str] | None = None
    for attempt in range(2):
        try:
            with db.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
                if inspect(connection).has_table("alembic_version"):
                    rows = list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
            break
        except DBAPIError as exc:
            if exc.connection_invalidated and attempt == 0:
                continue  # a pooled connection from before an outage; the next one is new
            return f"database unreachable: {type(exc.orig).__name__}"
        except SQLAlchemyError as exc:
            return f"database unreachable: {type(exc).__name__}"
    if rows is None:
        return "the database has no schema: run `fieldstation db upgrade`"
    if set(rows) != {HEAD}:
        current = ", ".join(sorted(rows)) or "none"
        return f"schema at {current}, the migrations' head is {HEAD}: run `fieldstation db upgrade`"
    return None


@health_bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """200 when the database answers and its schema is current, else 503 with the reason."""
    reason = not_ready()
    if reason is not None:
        return jsonify({"status": "unavailable", "reason": reason}), 503
    return jsonify({"status": "ready"}), 200


def _rollup_backlog() -> float | None:
    """Hour slots written since the rollups' last refresh (None when the database does not answer)."""
    try:
        with db.engine.connect() as connection:
            return float(connection.execute(text("SELECT count(*) FROM rollup_dirty")).scalar_one())
    except SQLAlchemyError:
        return None


def _may_scrape() -> bool:
    access = str(current_app.config.get("METRICS_ACCESS", "loopback"))
    if access == "open":
        return True
    if access == "token":
        token = str(current_app.config.get("METRICS_TOKEN") or "")
        given = request.headers.get("Authorization", "")
        return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


@health_bp.get("/metrics")
def prometheus_metrics() -> Response:
    """Every process's metrics in Prometheus's text format (``METRICS_ACCESS`` says who may read them)."""
    if not _may_scrape():
        return Response("metrics are not open to this client (METRICS_ACCESS)\n", 403, mimetype="text/plain")
    body = metrics.exposition(
        [
            (
                "fieldstation_rollup_backlog",
                "Hour slots written since the rollups' last refresh",
                _rollup_backlog,
            )
        ]
    )
    return Response(body, content_type="text/plain; version=0.0.4; charset=utf-8")
