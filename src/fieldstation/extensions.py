"""Unbound Flask extensions, so that models and the app never import each other."""

from __future__ import annotations

from typing import Any

from flask_sqlalchemy import SQLAlchemy

from fieldstation.models.base import Base

db = SQLAlchemy(model_class=Base)


def make_migrate() -> Any:
    """Flask-Migrate, for the commands only: it imports Alembic, a fifth of a second a web worker
    does not need (``fieldstation.serving.served_app`` builds its app without it)."""
    from flask_migrate import Migrate

    return Migrate(render_as_batch=True, compare_type=True)
