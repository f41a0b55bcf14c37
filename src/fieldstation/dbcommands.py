"""``fieldstation db``: the operator's four schema commands (Alembic through Flask-Migrate),
and :func:`initialise`, the set-up ``init`` and ``serve --init`` share.

Flask-Migrate's authoring commands (``init``, ``migrate``, ``revision``, ``merge``,
``edit``, …) are for developers of Fieldstation; they live under ``fieldstation dev db``,
so ``db init`` never sits next to ``init``.
"""

from __future__ import annotations

import secrets

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import select

from fieldstation import manage
from fieldstation.accounts import require_new_password
from fieldstation.extensions import db
from fieldstation.models import User
from fieldstation.schema import HEAD, QUIET, current_revisions


def initialise(admin_name: str, admin_password: str | None) -> str | None:
    """Migrate, and create the first admin; the line that tells a generated password, if one was made.

    A generated password is one-time: its owner must change it at the first sign-in.
    Call inside an app context.
    """
    from flask_migrate import upgrade  # Alembic: only when the schema may change

    before = current_revisions(db.engine)
    # One line instead of Alembic's line per migration: the admin's password is what the
    # reader is looking for (`fieldstation db upgrade` keeps Alembic's own report).
    upgrade(x_arg=[QUIET])
    if not before:
        click.echo(f"new database set up (migrated to {HEAD}); instance folder: {current_app.instance_path}")
    elif before != {HEAD}:
        click.echo(f"database migrated from {', '.join(sorted(before))} to {HEAD}")
    else:
        click.echo("database is up to date")
    if db.session.scalar(select(User.id).where(User.is_admin.is_(True)).limit(1)) is not None:
        click.echo("an admin account exists already; none made")
        return None
    password = admin_password or secrets.token_urlsafe(12)
    user = manage.create_user(admin_name, password, is_admin=True)
    click.echo(f"created admin account {admin_name!r}")
    if admin_password:
        return None
    require_new_password(user)
    return f"one-time password of {admin_name!r} (shown only now; change it at the first sign-in): {password}"


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
