"""The ``fieldstation`` command: Flask's click group plus Fieldstation's commands.

User mistakes print one line and exit non-zero (click.ClickException), never a traceback.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select

from fieldstation import manage
from fieldstation.errors import FieldstationError
from fieldstation.extensions import db
from fieldstation.mail.command import mail_command
from fieldstation.models import KeyKind, User
from fieldstation.mqtt.command import mqtt_command
from fieldstation.rollups import rollups_group
from fieldstation.serving import SERVERS, server_command

F = TypeVar("F", bound=Callable[..., Any])


def friendly(func: F) -> F:
    """Turn domain errors into click's one-line error and exit status 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except FieldstationError as exc:
            db.session.rollback()
            raise click.ClickException(exc.message) from None

    return wrapper  # type: ignore[return-value]


# -- init / serve ----------------------------------------------------------------------------


@click.command("init")
@click.option("--admin", "admin_name", default="admin", show_default=True, help="Name of the first admin.")
@click.option(
    "--admin-password",
    envvar="FIELDSTATION_ADMIN_PASSWORD",
    help="Else a one-time password is printed.",
)
@with_appcontext
@friendly
def init_command(admin_name: str, admin_password: str | None) -> None:
    """Upgrade the database to the latest migration and create the first admin if there is none."""
    from flask_migrate import upgrade

    upgrade()
    if db.session.scalar(select(User.id).where(User.is_admin.is_(True)).limit(1)) is not None:
        click.echo("database is up to date; an admin account exists")
        return
    password = admin_password or secrets.token_urlsafe(12)
    manage.create_user(admin_name, password, is_admin=True)
    click.echo(f"created admin account {admin_name!r}")
    if not admin_password:
        click.echo(f"one-time password (shown only now): {password}")


@click.command("serve")
@click.option("--host", default="127.0.0.1", show_default=True, envvar="FIELDSTATION_HOST")
@click.option("--port", default=8000, show_default=True, type=int, envvar="FIELDSTATION_PORT")
@click.option("--workers", default=2, show_default=True, type=int, envvar="FIELDSTATION_WORKERS")
@click.option(
    "--server",
    type=click.Choice(SERVERS),
    default="uwsgi",
    show_default=True,
    envvar="FIELDSTATION_SERVER",
    help="gunicorn where no uWSGI wheel is available.",
)
@click.option("--access-log/--no-access-log", default=False, envvar="FIELDSTATION_ACCESS_LOG")
def serve_command(host: str, port: int, workers: int, server: str, access_log: bool) -> None:
    """Serve with uWSGI or gunicorn (production); ``run`` is Flask's development server."""
    args = server_command(server, host, port, workers, access_log=access_log)
    click.echo(f"Fieldstation on http://{host}:{port}/ ({server}, {workers} workers)")
    os.execv(args[0], args)


# -- users -----------------------------------------------------------------------------------


@click.group("user")
def user_group() -> None:
    """Manage accounts."""


@user_group.command("create")
@click.argument("username")
@click.option("--admin", is_flag=True, help="Make the user an administrator.")
@click.password_option(envvar="FIELDSTATION_USER_PASSWORD")
@with_appcontext
@friendly
def user_create(username: str, admin: bool, password: str) -> None:
    """Create a user and print their user key (shown once)."""
    user = manage.create_user(username, password, is_admin=admin)
    _, raw = manage.create_key(user, KeyKind.USER)
    click.echo(f"created user {user.username!r} (id {user.id})")
    click.echo(f"user key (shown only now): {raw}")


@user_group.command("list")
@with_appcontext
def user_list() -> None:
    """List users."""
    for user in db.session.scalars(select(User).order_by(User.id)):
        click.echo(f"{user.id}\t{user.username}\t{'admin' if user.is_admin else 'user'}")


@user_group.command("passwd")
@click.argument("username")
@click.password_option(envvar="FIELDSTATION_USER_PASSWORD")
@with_appcontext
@friendly
def user_passwd(username: str, password: str) -> None:
    """Set a user's password."""
    manage.set_password(manage.get_user(username), password)
    click.echo(f"password of {username!r} changed")


# -- channels --------------------------------------------------------------------------------


@click.group("channel")
def channel_group() -> None:
    """Manage channels."""


@channel_group.command("create")
@click.argument("name")
@click.option("--owner", required=True, help="Username of the owner.")
@click.option("--field", "fields", multiple=True, help="Field name; repeat for fields 1, 2, …")
@click.option("--description", default="")
@click.option("--public", is_flag=True, help="Readable without a key.")
@with_appcontext
@friendly
def channel_create(name: str, owner: str, fields: tuple[str, ...], description: str, public: bool) -> None:
    """Create a channel with a write key and a read key (printed once)."""
    user = manage.get_user(owner)
    channel = manage.create_channel(user, name, fields=fields, description=description, public=public)
    _, write_key = manage.create_key(user, KeyKind.WRITE, channel=channel)
    _, read_key = manage.create_key(user, KeyKind.READ, channel=channel)
    click.echo(f"created channel {channel.name!r} (id {channel.id})")
    click.echo(f"write key (shown only now): {write_key}")
    click.echo(f"read key (shown only now): {read_key}")


@channel_group.command("list")
@click.option("--owner", help="Only this user's channels.")
@with_appcontext
@friendly
def channel_list(owner: str | None) -> None:
    """List channels."""
    from fieldstation.models import Channel

    query = select(Channel).order_by(Channel.id)
    if owner:
        query = query.where(Channel.owner_id == manage.get_user(owner).id)
    for channel in db.session.scalars(query):
        visibility = "public" if channel.public else "private"
        fields = f"{len(channel.fields)} fields"
        click.echo(f"{channel.id}\t{channel.name}\t{channel.owner.username}\t{visibility}\t{fields}")


@channel_group.command("show")
@click.argument("channel")
@with_appcontext
@friendly
def channel_show(channel: str) -> None:
    """Show a channel (by id or name) with its fields, keys and devices."""
    ch = manage.find_channel(channel)
    click.echo(
        f"channel {ch.id}: {ch.name} ({'public' if ch.public else 'private'}), owner {ch.owner.username}"
    )
    click.echo(f"entries: {ch.last_entry_id}")
    for field in ch.fields:
        click.echo(
            f"  field{field.number}: {field.name}"
            + (f" [{field.unit}]" if field.unit else "")
            + _extras(field)
        )
    for key in manage.keys_of(ch):
        state = "revoked" if key.revoked_at else "live"
        device = f" device {key.device_id}" if key.device_id else ""
        click.echo(f"  key {key.id}: {key.kind} {key.prefix}…{device} ({state})")
    for device in ch.devices:
        click.echo(f"  allowed device: {device.device_id}")


def _extras(field: Any) -> str:
    """A field's kind, calibration and expression as ``channel show`` lists them."""
    parts = [field.kind] if field.kind != "gauge" else []
    if field.cal_scale is not None or field.cal_offset is not None:
        parts.append(
            f"value * {field.cal_scale if field.cal_scale is not None else 1:g} + {field.cal_offset or 0:g}"
        )
    if field.expression:
        parts.append(f"= {field.expression}")
    return f" ({', '.join(parts)})" if parts else ""


@channel_group.command("field")
@click.argument("channel")
@click.argument("number", type=int)
@click.option("--unit", help="Unit (W, kW, l, °C, …).")
@click.option("--kind", type=click.Choice(["gauge", "power", "counter"]), help="What the field measures.")
@click.option("--max-gap", "max_gap_s", type=int, help="Seconds a power reading holds at most (energy).")
@click.option("--scale", "cal_scale", type=float, help="Calibration: stored value = value * scale + offset.")
@click.option("--offset", "cal_offset", type=float, help="Calibration offset (see --scale).")
@click.option("--no-calibration", is_flag=True, help="Store new readings as they come.")
@click.option("--expression", help="Compute the field from others of the entry, e.g. 'voltage * current'.")
@with_appcontext
@friendly
def channel_field(channel: str, number: int, no_calibration: bool, **settings: object) -> None:
    """Change a field's unit, kind, energy gap, calibration or expression (docs/energy.md)."""
    changes = {k: v for k, v in settings.items() if v is not None}
    if no_calibration:
        changes |= {"cal_scale": None, "cal_offset": None}
    field = manage.update_field(manage.get_field(manage.find_channel(channel), number), **changes)
    calibration = (
        f", value * {field.cal_scale or 1:g} + {field.cal_offset or 0:g}"
        if changes.keys() & {"cal_scale", "cal_offset"}
        else ""
    )
    click.echo(f"field{field.number}: {field.name} ({field.kind}{calibration})")


@channel_group.command("delete")
@click.argument("channel")
@click.confirmation_option(prompt="Delete the channel and all its data?")
@with_appcontext
@friendly
def channel_delete(channel: str) -> None:
    """Delete a channel (by id or name) and all its data."""
    ch = manage.find_channel(channel)
    manage.delete_channel(ch)
    click.echo(f"deleted channel {channel!r}")


# -- keys ------------------------------------------------------------------------------------


@click.group("key")
def key_group() -> None:
    """Manage API keys."""


@key_group.command("create")
@click.argument("channel", required=False)
@click.option("--kind", type=click.Choice(["write", "read", "user"]), default="write", show_default=True)
@click.option("--user", "username", help="For --kind user: whose key.")
@click.option("--device", help="Bind a write key to one device id (MAC address).")
@click.option("--label", help="A note to tell keys apart.")
@with_appcontext
@friendly
def key_create(
    channel: str | None, kind: str, username: str | None, device: str | None, label: str | None
) -> None:
    """Create a key for CHANNEL (id or name), or a user key with --kind user --user NAME."""
    if kind == "user":
        if not username:
            raise click.UsageError("--kind user needs --user NAME")
        user = manage.get_user(username)
        key, raw = manage.create_key(user, KeyKind.USER, label=label)
    else:
        if not channel:
            raise click.UsageError("name the channel")
        ch = manage.find_channel(channel)
        key, raw = manage.create_key(ch.owner, KeyKind(kind), channel=ch, device=device, label=label)
    click.echo(f"created {kind} key {key.id} (shown only now): {raw}")


@key_group.command("list")
@click.argument("channel")
@with_appcontext
@friendly
def key_list(channel: str) -> None:
    """List a channel's keys (only their first characters are known)."""
    for key in manage.keys_of(manage.find_channel(channel)):
        state = "revoked" if key.revoked_at else "live"
        click.echo(f"{key.id}\t{key.kind}\t{key.prefix}…\t{key.device_id or '-'}\t{state}\t{key.label or ''}")


@key_group.command("revoke")
@click.argument("key_id", type=int)
@with_appcontext
@friendly
def key_revoke(key_id: int) -> None:
    """Revoke a key by id; it is refused from the next request on."""
    manage.revoke_key(manage.key_by_id(key_id))
    click.echo(f"revoked key {key_id}")


# -- maintenance -----------------------------------------------------------------------------


@click.command("purge")
@click.option(
    "--older-than", "older_than", type=click.IntRange(min=0), help="Days; else each channel's retention."
)
@click.option("--channel", "channel_ref", help="Only this channel (id or name).")
@with_appcontext
@friendly
def purge_command(older_than: int | None, channel_ref: str | None) -> None:
    """Delete readings older than each channel's retention (or than --older-than days)."""
    from fieldstation.retention import purge

    channel_id = manage.find_channel(channel_ref).id if channel_ref else None
    result = purge(older_than_days=older_than, channel_id=channel_id)
    click.echo(
        f"purged {result.readings} readings and {result.entries} entries from {result.channels} channels"
    )


@click.command("backup")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@with_appcontext
@friendly
def backup_command(target: Path) -> None:
    """Write a consistent backup of the database to TARGET while the server runs."""
    from flask import current_app

    from fieldstation.backup import backup

    written = backup(current_app.config["SQLALCHEMY_DATABASE_URI"], target)
    click.echo(f"backup written to {written}")


COMMANDS = [init_command, serve_command, user_group, channel_group, key_group, purge_command, backup_command]
COMMANDS.append(mqtt_command)
COMMANDS.append(mail_command)
COMMANDS.append(rollups_group)


def register_commands(app: Flask) -> None:
    """Attach the commands to ``app.cli`` (and so to ``flask --app fieldstation``)."""
    for command in COMMANDS:
        app.cli.add_command(command)
