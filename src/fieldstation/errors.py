"""One error vocabulary: exceptions carry their HTTP status and a short code."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException


class FieldstationError(Exception):
    """Base of every error a client can cause; rendered as a JSON 4xx."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status


class BadRequest(FieldstationError):
    """Malformed or invalid input."""


class Unauthorized(FieldstationError):
    """Missing or unknown credentials."""

    status = 401
    code = "unauthorized"


class Forbidden(FieldstationError):
    """Valid credentials that may not do this (for example a device not on the allow-list)."""

    status = 403
    code = "forbidden"


class NotFound(FieldstationError):
    """Missing, or not visible to the caller (never reveals which)."""

    status = 404
    code = "not_found"


class Conflict(FieldstationError):
    """The request clashes with existing state (duplicate name)."""

    status = 409
    code = "conflict"


class RateLimited(FieldstationError):
    """Too soon: the channel's minimum interval between updates, or the sign-in throttle."""

    status = 429
    code = "rate_limited"


def error_body(status: int, code: str, message: str) -> Response:
    """Build the JSON error response every native endpoint uses."""
    response = jsonify({"error": {"code": code, "message": message}})
    response.status_code = status
    return response


def _http_code(exc: HTTPException) -> str:
    return (exc.name or "error").lower().replace(" ", "_")


def register_error_handlers(app: Flask) -> None:
    """Render FieldstationError and Werkzeug's HTTP errors as JSON, and roll back on 500."""

    @app.errorhandler(FieldstationError)
    def _domain_error(exc: FieldstationError) -> Response:
        _rollback()
        return error_body(exc.status, exc.code, exc.message)

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        _rollback()
        if _wants_html():
            return exc
        status = exc.code or 500
        response = error_body(status, _http_code(exc), exc.description or exc.name)
        # Werkzeug's own headers, such as the Allow that a 405 must carry (RFC 9110 §15.5.6).
        response.headers.extend((k, v) for k, v in exc.get_headers() if k.lower() != "content-type")
        return response

    @app.errorhandler(500)
    def _server_error(exc: Exception) -> Response:
        _rollback()
        return error_body(500, "internal_error", "internal server error")


def _wants_html() -> bool:
    """Dashboard pages keep Werkzeug's HTML error pages; everything else gets JSON."""
    path = request.path
    return path.startswith("/dashboard") or (
        request.accept_mimetypes.accept_html
        and not request.accept_mimetypes.accept_json
        and not path.startswith(("/api/", "/update", "/channels", "/write", "/query", "/ping"))
    )


def _rollback() -> None:
    from fieldstation.extensions import db

    db.session.rollback()
