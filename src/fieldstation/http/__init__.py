"""Blueprint objects; each interface module attaches its routes to one of these."""

from __future__ import annotations

from flask import Blueprint

#: Native JSON API (management and data), under /api/v1.
api_bp = Blueprint("api", __name__, url_prefix="/api/v1")
