"""``fieldstation devices``: the devices seen on a channel and their expected intervals (issue 19)."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import with_appcontext

from fieldstation import devices, manage
from fieldstation.cli import friendly
from fieldstation.points import now_us


@click.group("devices")
def devices_group() -> None:
    """Devices seen on a channel (who wrote, when last, silent or not)."""


@devices_group.command("seen")
@click.argument("channel")
@with_appcontext
@friendly
def devices_seen(channel: str) -> None:
    """List the devices that wrote to CHANNEL (id or name), most recent first."""
    ch = manage.find_channel(channel)
    for d in devices.seen(ch.id, now_us()):
        last = dt.datetime.fromtimestamp(d.last_seen_us / 1e6, dt.UTC).isoformat(timespec="seconds")
        expected = "-" if d.expected_interval_s is None else f"{d.expected_interval_s:g}s ({d.expected_from})"
        state = "SILENT" if d.silent else "ok"
        click.echo(f"{d.device}\t{last}\t{d.writes} writes\texpected {expected}\t{state}")


@devices_group.command("expect")
@click.argument("channel")
@click.argument("seconds")
@click.option("--device", help="Only this device (default: every device of the channel without its own).")
@with_appcontext
@friendly
def devices_expect(channel: str, seconds: str, device: str | None) -> None:
    """Set the expected interval between writes to SECONDS ("none" removes it)."""
    ch = manage.find_channel(channel)
    if seconds.lower() == "none":
        value = None
    else:
        try:
            value = int(seconds)
        except ValueError:
            raise click.BadParameter("a whole number of seconds, or none", param_hint="SECONDS") from None
    devices.set_expected(ch.id, device, value)
    who = f"device {device}" if device else "the channel's devices"
    click.echo(f"expected interval of {who}: {'default' if value is None else f'{value} s'}")


MONITORING_COMMANDS: list[click.Command] = [devices_group]
