"""``fieldstation db``: the operator's four schema commands (Alembic through Flask-Migrate).

Flask-Migrate's authoring commands (``init``, ``migrate``, ``revision``, ``merge``,
``edit``, …) are for developers of Fieldstation; they live under ``fieldstation dev db``,
so ``db init`` never sits next to ``init``.
"""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.group("db")
def db_group() -> None:
    """The database schema: upgrade after installing a new version, or step back."""


@db_group.command("upgrade")
@click.argument("revision", default="head")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it.")
@with_appcontext
def db_upgrade(revision: str, sql: bool) -> None:
    """Migrate the database up to REVISION (default: the newest)."""
    from flask_migrate import upgrade

    upgrade(revision=revision, sql=sql)


@db_group.command("downgrade")
@click.argument("revision", default="-1")
@click.option("--sql", is_flag=True, help="Print the SQL instead of running it.")
@with_appcontext
def db_downgrade(revision: str, sql: bool) -> None:
    """Step the database back to REVISION (default: one step)."""
    from flask_migrate import downgrade

    downgrade(revision=revision, sql=sql)


@db_group.command("current")
@with_appcontext
def db_current() -> None:
    """Show the database's revision."""
    from flask_migrate import current

    current()


@db_group.command("history")
@with_appcontext
def db_history() -> None:
    """List the migrations."""
    from flask_migrate import history

    history()
