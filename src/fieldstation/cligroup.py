"""The ``fieldstation`` command group: Fieldstation's own commands, one line for every failure.

Flask's group (``flask.cli.FlaskGroup``) would add ``--env-file``, ``-A/--app``,
``--debug``, ``routes``, ``shell`` and every plugin's commands to the top level;
an operator needs none of them. This group knows only the commands given to it,
builds the app lazily (``--help`` and ``--version`` need no database), and keeps
Flask's development commands under ``fieldstation dev``. It also loads the
commands lazily: ``serve`` imports its own module only, since every import before
the server starts delays the first answer.

A database that cannot be reached or was never initialised is a user's mistake
too: it ends as one line and exit status 1, never a traceback.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import click
from flask import Flask
from flask.cli import ScriptInfo

from fieldstation.errors import FieldstationError


class FieldstationGroup(click.Group):
    """A click group that hands its commands Flask's ScriptInfo and translates database errors.

    ``load_commands`` gives every command (called once, when one is first needed);
    ``quick`` names commands that can be loaded alone, without the others' imports.
    """

    def __init__(
        self,
        *args: Any,
        create_app: Callable[[], Flask],
        load_commands: Callable[[], list[click.Command]],
        quick: Mapping[str, Callable[[], click.Command]],
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.create_app = create_app
        self.load_commands = load_commands
        self.quick = quick
        self.loaded = False

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The command ``cmd_name``, importing no more than it needs."""
        if cmd_name in self.quick and cmd_name not in self.commands:
            self.add_command(self.quick[cmd_name](), cmd_name)
        if cmd_name not in self.commands:
            self._load_all()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Every command's name (for ``--help``), which loads them all."""
        self._load_all()
        return super().list_commands(ctx)

    def _load_all(self) -> None:
        if not self.loaded:
            for command in self.load_commands():
                self.add_command(command)
            self.loaded = True

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        """Give every command the lazily built app (``with_appcontext`` reads it from ``ctx.obj``)."""
        extra.setdefault("obj", ScriptInfo(create_app=self.create_app, set_debug_flag=False))
        return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a database error becomes one line (``Error: …``) and exit status 1."""
        from sqlalchemy import exc as sa_exc

        try:
            return super().invoke(ctx)
        except sa_exc.DBAPIError as exc:
            from fieldstation.extensions import db
            from fieldstation.schema import explain

            script_info = ctx.find_object(ScriptInfo)
            app = script_info.load_app() if script_info is not None else None
            if app is None:
                raise
            with app.app_context():
                message = explain(exc, db.engine)
            raise click.ClickException(message) from None


F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Turn domain errors into click's one-line error and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FieldstationError as exc:
            from fieldstation.extensions import db  # not imported for commands that never fail so

            db.session.rollback()
            raise click.ClickException(exc.message) from None

    return wrapper  # type: ignore[return-value]


def dev_group() -> click.Group:
    """``fieldstation dev``: Flask's development server, shell and routes, and migration authoring."""
    from flask.cli import routes_command, run_command, shell_command
    from flask_migrate.cli import db as authoring

    group = click.Group("dev", help="For Fieldstation's developers: Flask's tools and migration authoring.")
    for command in (run_command, shell_command, routes_command):
        group.add_command(command)
    group.add_command(authoring, "db")
    return group
