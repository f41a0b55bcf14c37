"""My channels: the list, create, edit and delete (all through fieldstation.manage)."""

from __future__ import annotations

import json
import math
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from fieldstation import channelmeta, manage, query
from fieldstation.dashboard import monitoring, plots
from fieldstation.dashboard.blueprint import bp
from fieldstation.dashboard.forms import ActionForm, ChannelForm
from fieldstation.dashboard.ranges import viewer_zone
from fieldstation.dashboard.session import login_required, me
from fieldstation.errors import BadRequest, FieldstationError
from fieldstation.models import Channel, Field
from fieldstation.points import normalize_device, plain_int

#: Empty field rows offered on the create and edit forms.
NEW_FIELD_ROWS = 8
SPARE_FIELD_ROWS = 2
_LIMITS = {"latitude": 90.0, "longitude": 180.0, "elevation": 100_000.0}


@bp.get("/dashboard/channels")
@login_required
def my_channels() -> str:
    """Each of my channels with its newest entry, as the channel page shows it (``_latest.html``)."""
    user = me()
    channels = manage.channels_of(user)
    zone = viewer_zone(request.args, request.cookies)
    rows = [(channel, query.latest_entry(channel.id), plots.totals_of(channel, zone)) for channel in channels]
    health = monitoring.overview([c.id for c in channels])
    return render_template("dashboard/channels.html", rows=rows, zone=zone, health=health)


@bp.route("/dashboard/channels/new", methods=["GET", "POST"])
@login_required
def new_channel() -> Response | tuple[str, int]:
    """Create a channel with named fields, units, devices and a location."""
    form = ChannelForm()
    if request.method == "GET":
        form = ChannelForm(data={"fields": [{"number": ""}] * NEW_FIELD_ROWS})
    elif form.validate_on_submit():
        try:
            channel = _create(form)
        except FieldstationError as exc:
            flash(exc.message, "error")
            return render_template("dashboard/channel_form.html", form=form, channel=None), exc.status
        flash(f"Created channel {channel.name}. Make a write key to send data.", "success")
        return redirect(url_for("dashboard.channel_keys", channel_id=channel.id))
    return render_template(
        "dashboard/channel_form.html", form=form, channel=None
    ), 400 if form.errors else 200


@bp.route("/dashboard/channels/<int:channel_id>/edit", methods=["GET", "POST"])
@login_required
def edit_channel(channel_id: int) -> Response | tuple[str, int]:
    """Change a channel's settings, fields and allowed devices."""
    channel = manage.channel_for(me(), channel_id)
    form = ChannelForm()
    if request.method == "GET":
        form = ChannelForm(data=_form_data(channel))
    elif form.validate_on_submit():
        try:
            _update(channel, form)
        except FieldstationError as exc:
            flash(exc.message, "error")
            return render_template("dashboard/channel_form.html", form=form, channel=channel), exc.status
        flash("Saved.", "success")
        return redirect(url_for("dashboard.channel_view", channel_id=channel.id))
    status = 400 if form.errors else 200
    return render_template("dashboard/channel_form.html", form=form, channel=channel), status


@bp.route("/dashboard/channels/<int:channel_id>/delete", methods=["GET", "POST"])
@login_required
def delete_channel(channel_id: int) -> Response | str:
    """Ask first (GET), then delete the channel and all its data (POST)."""
    channel = manage.channel_for(me(), channel_id)
    form = ActionForm()
    if form.validate_on_submit():
        name = channel.name
        manage.delete_channel(channel)
        flash(f"Deleted channel {name} and all its data.", "success")
        return redirect(url_for("dashboard.my_channels"))
    return render_template("dashboard/channel_delete.html", channel=channel, form=form)


# -- form <-> manage -------------------------------------------------------------------------


def _form_data(channel: Channel) -> dict[str, Any]:
    rows = [
        {
            "number": str(f.number),
            "name": f.name,
            "unit": f.unit or "",
            "kind": f.kind,
            "scale": _text(f.cal_scale),
            "offset": _text(f.cal_offset),
            "expression": f.expression or "",
        }
        for f in channel.fields
    ]
    return {
        "name": channel.name,
        "description": channel.description,
        "public": channel.public,
        "fields": rows + [{"number": ""}] * SPARE_FIELD_ROWS,
        "devices": "\n".join(d.device_id for d in channel.devices),
        "latitude": _text(channel.latitude),
        "longitude": _text(channel.longitude),
        "elevation": _text(channel.elevation),
        **_meta_data(channel),
        "retention_days": "" if channel.retention_days is None else str(channel.retention_days),
        "min_interval_s": str(channel.min_interval_s),
    }


def _meta_data(channel: Channel) -> dict[str, str]:
    meta = channelmeta.read(channel.id)
    pairs = json.dumps(meta.pairs, ensure_ascii=False, indent=1) if meta.pairs else ""
    return {"metadata": meta.metadata, "tags": ", ".join(meta.tags), "pairs": pairs}


def _save_meta(channel: Channel, form: ChannelForm) -> None:
    """The metadata text, tags and pairs of the form (within the form's one transaction)."""
    raw = (form.pairs.data or "").strip()
    try:
        pairs = json.loads(raw) if raw else {}
    except ValueError as exc:
        raise BadRequest(f"the key-value pairs are not JSON: {exc}") from None
    if not isinstance(pairs, dict):
        raise BadRequest('the key-value pairs must be a JSON object: {"key": value, …}')
    channelmeta.update(
        channel, metadata=form.metadata.data or "", tags=form.tags.data or "", pairs=pairs, commit=False
    )


def _text(number: float | None) -> str:
    return "" if number is None else f"{number:g}"


def _settings(form: ChannelForm) -> dict[str, Any]:
    """Name, description, public flag and location from the form (location checked here)."""
    settings: dict[str, Any] = {
        "name": (form.name.data or "").strip(),
        "description": form.description.data or "",
        "public": bool(form.public.data),
    }
    for name, limit in _LIMITS.items():
        raw = (getattr(form, name).data or "").strip()
        try:
            value = float(raw) if raw else None
        except ValueError:
            raise BadRequest(f"{name} must be a number") from None
        if value is not None and not (math.isfinite(value) and -limit <= value <= limit):
            raise BadRequest(f"{name} must be between -{limit:g} and {limit:g}")
        settings[name] = value
    settings.update(monitoring.limits_from(form.retention_days.data, form.min_interval_s.data))
    return settings


def _devices(form: ChannelForm) -> list[str]:
    """The allow-list, normalised (bad ids are refused before anything is saved)."""
    lines = [line.strip() for line in (form.devices.data or "").splitlines() if line.strip()]
    return list(dict.fromkeys(normalize_device(line) for line in lines))


def _rows(form: ChannelForm) -> list[dict[str, Any]]:
    return [row.data for row in form.fields]


def _field_settings(row: dict[str, Any], field: Field) -> dict[str, Any]:
    """The unit, kind, calibration and expression of a form row that differ from the field's."""
    wanted: dict[str, Any] = {
        "unit": (row.get("unit") or "").strip() or None,
        "kind": row.get("kind") or "gauge",
        "expression": (row.get("expression") or "").strip() or None,
    }
    for key, name in (("scale", "cal_scale"), ("offset", "cal_offset")):
        raw = (row.get(key) or "").strip()
        try:
            wanted[name] = float(raw) if raw else None
        except ValueError:
            raise BadRequest(f"the {key} of field {row.get('name')!r} must be a number") from None
    return {k: v for k, v in wanted.items() if getattr(field, k) != v}


def _create(form: ChannelForm) -> Channel:
    """The channel, its fields' units and its devices, saved together or not at all."""
    settings = _settings(form)
    devices = _devices(form)
    named = [r for r in _rows(form) if (r["name"] or "").strip()]
    with manage.one_change():
        channel = manage.create_channel(
            me(), settings.pop("name"), fields=[r["name"].strip() for r in named], **settings
        )
        for row, field in zip(named, channel.fields, strict=False):
            changes = _field_settings(row, field)
            if changes:
                manage.update_field(field, **changes)
        for device in devices:
            manage.add_device(channel, device)
        _save_meta(channel, form)
    return channel


def _update(channel: Channel, form: ChannelForm) -> None:
    """Every change of the form in one transaction: a refusal part-way (a field name
    that clashes, 409) keeps none of them, so the page's error is the whole story."""
    settings = _settings(form)
    devices = _devices(form)
    with manage.one_change():
        _apply_form(channel, settings, devices, _rows(form))
        _save_meta(channel, form)


def _apply_form(
    channel: Channel, settings: dict[str, Any], devices: list[str], rows: list[dict[str, Any]]
) -> None:
    manage.update_channel(channel, **settings)
    by_number = {f.number: f for f in channel.fields}
    for row in rows:
        name, unit = (row["name"] or "").strip(), (row["unit"] or "").strip() or None
        raw_number = str(row["number"] or "")
        number = plain_int(raw_number)
        field = by_number.get(number) if number is not None else None
        if field is not None and row["remove"]:
            manage.delete_field(field)
        elif field is not None and name:
            changes = _field_settings(row, field)
            if name != field.name:
                changes["name"] = name
            if changes:
                manage.update_field(field, **changes)
        elif field is None and name:
            added = manage.add_field(channel, name, unit=unit)
            changes = _field_settings(row, added)
            if changes:
                manage.update_field(added, **changes)
    current = {d.device_id for d in channel.devices}
    for device in devices:
        if device not in current:
            manage.add_device(channel, device)
    for device in current - set(devices):
        manage.remove_device(channel, device)
