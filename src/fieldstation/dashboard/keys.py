"""Keys of a channel and the user's own key: create, revoke, and show a new key once."""

from __future__ import annotations

import shlex

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from fieldstation import manage
from fieldstation.dashboard.blueprint import bp
from fieldstation.dashboard.forms import ActionForm, KeyForm
from fieldstation.dashboard.session import login_required, me
from fieldstation.errors import FieldstationError, NotFound
from fieldstation.models import ApiKey, Channel, KeyKind


@bp.route("/dashboard/channels/<int:channel_id>/keys", methods=["GET", "POST"])
@login_required
def channel_keys(channel_id: int) -> Response | tuple[str, int]:
    """The channel's write and read keys and my user key; POST makes a new channel key."""
    user = me()
    channel = manage.channel_for(user, channel_id)
    form = KeyForm()
    new: tuple[ApiKey, str] | None = None
    status = 200
    if form.validate_on_submit():
        try:
            new = manage.create_key(
                user,
                KeyKind(form.kind.data),
                channel=channel,
                device=(form.device.data or "").strip() or None,
                label=(form.label.data or "").strip() or None,
            )
        except FieldstationError as exc:
            flash(exc.message, "error")
            status = exc.status
    elif form.errors:
        status = 400
    return _page(channel, form, new), status


@bp.post("/dashboard/channels/<int:channel_id>/keys/user")
@login_required
def new_user_key(channel_id: int) -> tuple[str, int]:
    """Make a new user key (the old one stops working); shown once on this page."""
    user = me()
    channel = manage.channel_for(user, channel_id)
    new = manage.create_key(user, KeyKind.USER)
    return _page(channel, KeyForm(formdata=None), new), 200


@bp.post("/dashboard/channels/<int:channel_id>/keys/<int:key_id>/revoke")
@login_required
def revoke_key(channel_id: int, key_id: int) -> Response:
    """Revoke a channel key or my user key; it is refused from the next request on."""
    user = me()
    channel = manage.channel_for(user, channel_id)
    try:
        key = manage.key_by_id(key_id, channel=channel)
    except NotFound:
        key = manage.key_by_id(key_id, user=user)
        if key.kind != KeyKind.USER:
            raise
    manage.revoke_key(key)
    flash(f"Revoked key {key.prefix}…", "success")
    return redirect(url_for("dashboard.channel_keys", channel_id=channel.id))


def _page(channel: Channel, form: KeyForm, new: tuple[ApiKey, str] | None) -> str:
    user = me()
    keys = manage.keys_of(channel)
    user_keys = manage.user_keys_of(user)
    base = request.host_url.rstrip("/")
    return render_template(
        "dashboard/keys.html",
        channel=channel,
        keys=keys,
        user_keys=user_keys,
        form=form,
        action=ActionForm(),
        new_key=new[0] if new else None,
        new_raw=new[1] if new else None,
        examples=examples(base, channel, new[1] if new else "YOUR_WRITE_KEY", new[0] if new else None),
    )


def examples(base: str, channel: Channel, key: str, made: ApiKey | None) -> dict[str, str]:
    """Copy-paste lines that send (write key) or read (read/user key) data with ``key``."""
    kind = made.kind if made is not None else KeyKind.WRITE
    first = channel.fields[0] if channel.fields else None
    number = first.number if first else 1
    if kind == KeyKind.READ:
        return {
            "curl (latest entry, JSON)": f"curl '{base}/channels/{channel.id}/feeds/last.json?api_key={key}'",
            "curl (last 100 entries, CSV)": f"curl '{base}/channels/{channel.id}/feeds.csv?api_key={key}'",
        }
    if kind == KeyKind.USER:
        return {
            "curl (management API)": f"curl -H 'Authorization: Bearer {key}' {base}/api/v1/channels",
        }
    device = made.device_id if made is not None and made.device_id else "6c:rf:7f:2b:0e:g8"
    return {
        "curl (ThingSpeak form)": f"curl -X POST {base}/update -d 'api_key={key}&field{number}=21.5'",
        "Path URL (the weather-station firmware)": (
            f"curl '{base}/update/API_key={key}/mac={device}/field={number}/data=21.5'"
        ),
        "ESP8266 sketch (ESP8266HTTPClient)": (
            "#include <ESP8266WiFi.h>\n"
            "#include <ESP8266HTTPClient.h>\n"
            "// … after WiFi.begin() has connected:\n"
            "WiFiClient client;\n"
            "HTTPClient http;\n"
            f'http.begin(client, "{base}/update");\n'
            'http.addHeader("Content-Type", "application/x-www-form-urlencoded");\n'
            f'int status = http.POST("api_key={key}&field{number}=" + String(temperature));\n'
            "http.end();"
        ),
        "ThingSpeak library (ThingSpeak.h)": (
            f'ThingSpeak.writeField({channel.id}, {number}, temperature, "{key}");\n'
            "// The library always connects to api.thingspeak.com: point that name at this\n"
            "// server in your DNS, or change THINGSPEAK_URL in ThingSpeak.h."
        ),
        "Line protocol (InfluxDB 1.x /write)": _line_protocol_example(base, channel, key),
    }


def _line_protocol_example(base: str, channel: Channel, key: str) -> str:
    """A /write of the channel's first field: the channel's name as the measurement fills its fields.

    Another measurement (or tags) would make new fields named ``<measurement>[,tags] <key>``
    (docs/ingest.md), which is rarely what someone copying an example wants.
    """
    from fieldstation.lineprotocol import escape_key, escape_measurement

    names = [f.name for f in channel.fields]
    # A key that needs escapes (a space, a comma, "=") reads as a new field's name: pick a plain one.
    plain = [name for name in names if escape_key(name) == name]
    field = plain[0] if plain else "field1"
    line = f"{escape_measurement(channel.name)} {escape_key(field)}=21.5"
    note = (
        f"# 204 = stored in field {field!r}: the measurement is the channel's name"
        if plain
        else "# fields whose names hold a space, a comma or '=' cannot be written this way: use /update"
    )
    url = f"{base}/write?db={channel.id}&u=device&p={key}"
    return f"curl -i -X POST '{url}' --data-binary {shlex.quote(line)}\n{note}"
