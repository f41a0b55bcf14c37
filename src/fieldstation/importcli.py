"""``fieldstation import``: CSV files into a channel, and a ThingSpeak channel moved here.

Large files get a progress bar (each file is read twice: checked, then written).
"""

from __future__ import annotations

import datetime as dt
import os
import sys
from pathlib import Path
from typing import IO
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import click
from flask.cli import with_appcontext

from fieldstation import manage
from fieldstation.errors import FieldstationError
from fieldstation.models import Channel, KeyKind


@click.group("import")
def import_group() -> None:
    """Bring data in: CSV files (ThingSpeak's export or Fieldstation's), or a whole ThingSpeak channel."""


def _zone(name: str) -> dt.tzinfo:
    try:
        return dt.UTC if name.upper() == "UTC" else ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {name!r}", param_hint="--timezone") from None


def _import(channel: Channel, path: Path, zone: dt.tzinfo, skip_bad: bool) -> None:
    """Import ``path`` with a progress bar, then the report; bad rows by line, exit 1 when refused."""
    from fieldstation.csvimport import import_file

    size = os.path.getsize(path)
    bar = click.progressbar(length=2 * size, label=f"{path.name}: checking, then writing", file=sys.stderr)
    with path.open("rb") as stream, bar:

        def advance(count: int) -> None:
            bar.update(count)

        report = import_file(channel, stream, zone, skip_bad=skip_bad, progress=advance)
    for line, message in report.errors:
        click.echo(f"line {line}: {message}", err=True)
    if report.bad_rows > len(report.errors):
        click.echo(f"… and {report.bad_rows - len(report.errors)} more bad rows", err=True)
    if report.fatal:
        raise click.ClickException(report.fatal)
    if report.bad_rows and not report.imported:
        raise click.ClickException(
            f"{report.bad_rows} bad rows: nothing imported (--skip-bad imports the rest)"
        )
    click.echo(f"imported {report.imported} rows ({report.readings} readings) into {channel.name!r}")


@import_group.command("csv")
@click.argument("channel")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--timezone", default="UTC", show_default=True, help="Zone of times without an offset.")
@click.option("--skip-bad", is_flag=True, help="Import the good rows even if some are bad.")
@with_appcontext
def import_csv(channel: str, file: Path, timezone: str, skip_bad: bool) -> None:
    """Import FILE (ThingSpeak's CSV export, or a Fieldstation download) into CHANNEL (id or name)."""
    try:
        _import(manage.find_channel(channel), file, _zone(timezone), skip_bad)
    except FieldstationError as exc:
        raise click.ClickException(exc.message) from None


@import_group.command("thingspeak")
@click.argument("feeds", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("settings", type=click.File("rb"))
@click.option("--owner", required=True, help="Username of the new channel's owner.")
@click.option("--name", help="Name of the new channel (default: ThingSpeak's).")
@click.option("--unit", "units", multiple=True, metavar="N:UNIT", help="A field's unit, e.g. 1:°C; repeat.")
@click.option("--skip-bad", is_flag=True, help="Import the good rows even if some are bad.")
@with_appcontext
def import_thingspeak(
    feeds: Path, settings: IO[bytes], owner: str, name: str | None, units: tuple[str, ...], skip_bad: bool
) -> None:
    """Move a ThingSpeak channel: its settings JSON (/channels/<id>.json) and its CSV export FEEDS.

    Makes the channel with ThingSpeak's fields, metadata and tags, imports the
    readings, and prints a new write key and read key.
    """
    from fieldstation import tsimport

    try:
        parsed = {}
        for spec in units:
            number, _, unit = spec.partition(":")
            if not number.isdigit() or not unit:
                raise click.BadParameter(f"{spec!r} is not N:UNIT", param_hint="--unit")
            parsed[int(number)] = unit
        user = manage.get_user(owner)
        channel = tsimport.create_channel(user, tsimport.read_settings(settings), name=name, units=parsed)
        click.echo(f"created channel {channel.name!r} (id {channel.id}) with {len(channel.fields)} fields")
        try:
            _import(channel, feeds, dt.UTC, skip_bad)
        except click.ClickException:
            manage.delete_channel(channel)  # all of the channel or nothing: run it again once fixed
            click.echo(f"deleted channel {channel.name!r} again: its data could not be imported", err=True)
            raise
        _, write_key = manage.create_key(user, KeyKind.WRITE, channel=channel)
        _, read_key = manage.create_key(user, KeyKind.READ, channel=channel)
    except FieldstationError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"write key (shown only now): {write_key}")
    click.echo(f"read key (shown only now): {read_key}")
