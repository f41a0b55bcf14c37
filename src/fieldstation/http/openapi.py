"""The OpenAPI document of /api/v1, served as the committed file (a test keeps it true to the routes)."""

from __future__ import annotations

from importlib import resources

from flask import Response

from fieldstation.http import api_bp


@api_bp.get("/openapi.json")
def openapi_document() -> Response:
    """src/fieldstation/openapi.json, as written."""
    text = resources.files("fieldstation").joinpath("openapi.json").read_text(encoding="utf-8")
    return Response(text, mimetype="application/json")
