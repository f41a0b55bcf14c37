"""The ``fieldstation`` command: Fieldstation's own commands (fieldstation.cligroup).

User mistakes, and a database that cannot be reached or was never initialised,
print one line and exit non-zero (click.ClickException), never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from flask import Flask
from flask.cli import with_appcontext
from sqlalchemy import select
from sqlalchemy.engine import make_url

from fieldstation import manage
from fieldstation.cli_monitoring import MONITORING_COMMANDS, channel_set
from fieldstation.cligroup import friendly
from fieldstation.dbcommands import db_group, initialise
from fieldstation.extensions import db
from fieldstation.importcli import import_group
from fieldstation.launch import serve_command
from fieldstation.mail.command import mail_command
from fieldstation.models import KeyKind, User
from fieldstation.mqtt.command import mqtt_command
from fieldstation.rollups import rollups_group
from fieldstation.stats import channel_counts

# -- init --------------------------------------------------------------------------------


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
    one_time = initialise(admin_name, admin_password)
    if one_time:
        click.echo(one_time)


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


@user_group.command("disable")
@click.argument("username")
@with_appcontext
@friendly
def user_disable(username: str) -> None:
    """Disable an account: no sign-in, its user key refused; its channels keep working."""
    from fieldstation.accounts import disable

    user = manage.get_user(username)
    disable(user, by=None)
    click.echo(f"disabled {username!r}")


@user_group.command("enable")
@click.argument("username")
@with_appcontext
@friendly
def user_enable(username: str) -> None:
    """Let a disabled account sign in again."""
    from fieldstation.accounts import enable

    enable(manage.get_user(username))
    click.echo(f"enabled {username!r}")


@user_group.command("delete")
@click.argument("username")
@click.option(
    "--hand-to", "heir_name", help="Give their channels (data and keys) to this user; else deleted."
)
@click.option("--yes", is_flag=True, help="Do not ask.")
@with_appcontext
@friendly
def user_delete(username: str, heir_name: str | None, yes: bool) -> None:
    """Delete an account; its channels go to --hand-to USER or are deleted with it (said before asking)."""
    from fieldstation.accounts import delete, hand_over_plan

    user = manage.get_user(username)
    heir = manage.get_user(heir_name) if heir_name else None
    for line in hand_over_plan(user, heir):
        click.echo(line)
    if not yes:
        click.confirm(f"Delete {username!r}?", abort=True)
    delete(user, by=None, heir=heir)
    click.echo(f"deleted {username!r}")


# -- channels --------------------------------------------------------------------------------


@click.group("channel")
def channel_group() -> None:
    """Manage channels."""


@channel_group.command("create")
@click.argument("name")
@click.option("--owner", required=True, help="Username of the owner.")
@click.option(
    "--field", "fields", multiple=True, metavar="NAME[:UNIT]", help="A field and its unit; repeat for 1, 2, …"
)
@click.option("--description", default="")
@click.option("--public", is_flag=True, help="Readable without a key.")
@with_appcontext
@friendly
def channel_create(name: str, owner: str, fields: tuple[str, ...], description: str, public: bool) -> None:
    """Create a channel with a write key and a read key (printed once)."""
    user = manage.get_user(owner)
    named = [field.partition(":") for field in fields]
    with manage.one_change():  # the channel and its units, or nothing
        channel = manage.create_channel(
            user, name, fields=[n for n, _, _ in named], description=description, public=public
        )
        # Without --field the channel gets one field, field1, with no unit to set.
        for field, (_, _, unit) in zip(channel.fields, named, strict=False):
            if unit:
                manage.update_field(field, unit=unit)
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
    counts = channel_counts(ch.id)
    click.echo(f"entries: {counts.entries}, readings: {counts.readings}, last entry id: {ch.last_entry_id}")
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


@channel_group.command("meta")
@click.argument("channel")
@click.option("--metadata", help="ThingSpeak's metadata text (replaces it).")
@click.option("--tags", help="Comma-separated tags (replace them).")
@click.option(
    "--set", "set_pairs", multiple=True, metavar="KEY=JSON", help="Set a pair; a bare word is a string."
)
@click.option("--unset", multiple=True, metavar="KEY", help="Remove a pair.")
@with_appcontext
@friendly
def channel_meta(
    channel: str, metadata: str | None, tags: str | None, set_pairs: tuple[str, ...], unset: tuple[str, ...]
) -> None:
    """Show, or change, a channel's metadata: text, tags and key-value pairs."""
    import json

    from fieldstation import channelmeta

    ch = manage.find_channel(channel)
    pairs = {}
    for item in set_pairs:
        key, sep, raw = item.partition("=")
        if not sep:
            raise click.UsageError(f"--set {item!r}: give KEY=JSON")
        try:
            pairs[key] = json.loads(raw)
        except ValueError:
            pairs[key] = raw  # firmware=1.4.2-beta: a plain string
    if metadata is not None or tags is not None or pairs or unset:
        meta = channelmeta.update(ch, metadata=metadata, tags=tags, set_pairs=pairs, unset=list(unset))
    else:
        meta = channelmeta.read(ch.id)
    click.echo(f"tags: {', '.join(meta.tags)}")
    for key, value in meta.pairs.items():
        click.echo(f"{key} = {json.dumps(value, ensure_ascii=False)}")
    if meta.metadata:
        click.echo(f"metadata: {meta.metadata}")


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

    written = backup(current_app.config["SQLALCHEMY_DATABASE_URI"], target, progress=_progress)
    click.echo(f"backup written to {written}")


@click.command("restore")
@click.argument("source", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask before replacing the database's contents.")
@with_appcontext
@friendly
def restore_command(source: Path, yes: bool) -> None:
    """Replace the database's contents with the backup SOURCE, after checking it is whole."""
    from flask import current_app

    from fieldstation.backup import restore

    url = current_app.config["SQLALCHEMY_DATABASE_URI"]
    if not yes:
        click.confirm(f"Replace everything in {make_url(url).render_as_string()} with {source}?", abort=True)
    db.session.remove()
    db.engine.dispose()  # this process holds no connection while the contents are replaced
    restore(url, source, progress=_progress)
    click.echo(f"restored {source}; run `fieldstation db upgrade` if it comes from an older version")


def _progress(line: str) -> None:
    click.echo(line, err=True)


COMMANDS = [
    init_command,
    serve_command,
    user_group,
    channel_group,
    key_group,
    purge_command,
    backup_command,
    restore_command,
]
COMMANDS.append(db_group)
COMMANDS.append(import_group)
COMMANDS.append(mqtt_command)
COMMANDS.append(mail_command)
COMMANDS.append(rollups_group)

COMMANDS += MONITORING_COMMANDS
channel_group.add_command(channel_set)


def register_commands(app: Flask) -> None:
    """Attach the commands to ``app.cli`` (and so to ``flask --app fieldstation``)."""
    for command in COMMANDS:
        app.cli.add_command(command)
