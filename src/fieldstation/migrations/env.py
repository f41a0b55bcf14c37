"""Alembic environment for Fieldstation, run through Flask-Migrate (``fieldstation db …``).

The URL and metadata come from the Flask app, so migrations run against
whatever DATABASE_URL the app is configured with, SQLite or PostgreSQL.
"""

from __future__ import annotations

import logging
from logging.config import fileConfig

from alembic import context
from flask import current_app

from fieldstation.models.base import in_schema_of
from fieldstation.schema import QUIET

config = context.config
if config.config_file_name is not None and QUIET not in context.get_x_argument():
    fileConfig(config.config_file_name)
log = logging.getLogger("alembic.env")

_db = current_app.extensions["migrate"].db
target_metadata = _db.metadata
_options = current_app.extensions["migrate"].configure_args


def _skip_empty(context_, revision, directives):  # type: ignore[no-untyped-def]
    """Autogenerate writes no revision when nothing changed."""
    if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
        directives[:] = []
        log.info("no changes in schema detected")


def _for_dialect(name: str):  # type: ignore[no-untyped-def]
    """Autogenerate compares only what the models create on this engine (``ddl_if``)."""

    def include(obj, _name, _type, _reflected, _compare_to):  # type: ignore[no-untyped-def]
        return in_schema_of(obj, name)

    return include


def run_offline() -> None:
    """Emit SQL to stdout (``fieldstation db upgrade --sql``)."""
    url = str(_db.engine.url).replace("%", "%%")
    context.configure(
        url=url,
        target_metadata=target_metadata,
        literal_binds=True,
        include_object=_for_dialect(_db.engine.dialect.name),
        **_options,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_online() -> None:
    """Run against the app's engine."""
    options = dict(_options)
    options.setdefault("process_revision_directives", _skip_empty)
    with _db.engine.connect() as connection:
        options.setdefault("include_object", _for_dialect(connection.dialect.name))
        context.configure(connection=connection, target_metadata=target_metadata, **options)
        with context.begin_transaction():
            context.run_migrations()


if context.is_offline_mode():
    run_offline()
else:
    run_online()
