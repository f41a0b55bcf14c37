"""Errors as HTTP answers: every ``FieldstationError`` and Werkzeug error as JSON."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from fieldstation.errors import FieldstationError
from fieldstation.extensions import db


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
    db.session.rollback()
