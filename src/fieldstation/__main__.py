"""The ``fieldstation`` command (and ``python -m fieldstation``): Fieldstation's own commands.

The commands are in :mod:`fieldstation.cli`, the group that runs them (the app
built lazily, database errors as one line) in :mod:`fieldstation.cligroup`. The
app factory also attaches them to every app, so ``flask --app fieldstation`` has them.
``serve`` is loaded alone (:mod:`fieldstation.launch`): what it imports delays the
server's first answer, and it needs neither the other commands nor the app.
"""

from __future__ import annotations

import os

import click
from flask import Flask

from fieldstation import create_app
from fieldstation.cligroup import FieldstationGroup, dev_group
from fieldstation.config import ConfigError
from fieldstation.instance import default_instance_path, ensure_config


def _create_app() -> Flask:
    """The app for a command; on first use the instance's ``config.py`` is written, as ``make run`` does.

    Without it a production app has no SECRET_KEY and refuses to start, so a
    fresh ``fieldstation init`` would fail; a key in the environment makes it unneeded.
    """
    if not os.environ.get("FIELDSTATION_SECRET_KEY"):
        ensure_config(default_instance_path())
    try:
        return create_app()
    except ConfigError as exc:  # no SECRET_KEY yet, an unknown FIELDSTATION_ENV: one line, no traceback
        raise click.ClickException(str(exc)) from None


def _commands() -> list[click.Command]:
    from fieldstation.cli import COMMANDS

    return [*COMMANDS, dev_group()]


def _serve() -> click.Command:
    from fieldstation.launch import serve_command

    return serve_command


@click.group(cls=FieldstationGroup, create_app=_create_app, load_commands=_commands, quick={"serve": _serve})
@click.version_option(package_name="fieldstation", prog_name="fieldstation")
def main() -> None:
    """Fieldstation: a self-hosted server for sensor data."""


if __name__ == "__main__":
    main()
