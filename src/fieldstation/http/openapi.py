"""The OpenAPI document of the native JSON API, served as written in ``openapi.json``."""

from __future__ import annotations

from importlib.resources import files

from flask import Response

from fieldstation.http import api_bp


@api_bp.get("/openapi.json")
def openapi() -> Response:
    """The OpenAPI 3.1 description of every /api/v1 route (a test keeps it complete)."""
    text = files("fieldstation").joinpath("openapi.json").read_text(encoding="utf-8")
    return Response(text, mimetype="application/json")
