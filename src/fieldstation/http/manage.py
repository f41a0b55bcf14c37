"""Management API: channels, fields, keys and device allow-lists, authenticated by user key."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from flask import Response, jsonify, url_for
from pydantic import Field as Constraint

from fieldstation import channelmeta, manage
from fieldstation.auth import current_api_user
from fieldstation.http import api_bp
from fieldstation.http.jsonbody import Strict, parse_body
from fieldstation.models import ApiKey, Channel, Device, Field, KeyKind
from fieldstation.models.channels import MAX_GAP_S
from fieldstation.params import format_time

Name = Annotated[str, Constraint(min_length=1, max_length=255)]
Latitude = Annotated[float, Constraint(ge=-90, le=90)]
Longitude = Annotated[float, Constraint(ge=-180, le=180)]


Kind = Literal["gauge", "power", "counter"]
Gap = Annotated[int, Constraint(ge=1, le=MAX_GAP_S)]
Expression = Annotated[str, Constraint(max_length=500)]


class FieldIn(Strict):
    name: Name
    unit: Annotated[str, Constraint(max_length=32)] | None = None
    kind: Kind | None = None
    max_gap_s: Gap | None = None
    cal_scale: float | None = None
    cal_offset: float | None = None
    expression: Expression | None = None


class ChannelPatch(Strict):
    name: Name | None = None
    description: Annotated[str, Constraint(max_length=10_000)] | None = None
    public: bool | None = None
    latitude: Latitude | None = None
    longitude: Longitude | None = None
    elevation: float | None = None
    min_interval_s: Annotated[int, Constraint(ge=0, le=manage.MAX_MIN_INTERVAL_S)] | None = None
    retention_days: Annotated[int, Constraint(ge=1, le=manage.MAX_RETENTION_DAYS)] | None = None
    mqtt_topic_prefix: Annotated[str, Constraint(min_length=1, max_length=255)] | None = None
    #: ThingSpeak's channel metadata text and tags (fieldstation.channelmeta).
    metadata: Annotated[str, Constraint(max_length=65_536)] | None = None
    tags: list[Annotated[str, Constraint(max_length=100)]] | str | None = None


class ChannelIn(ChannelPatch):
    name: Name
    fields: Annotated[list[Name | FieldIn], Constraint(max_length=200)] = []


class FieldPatch(Strict):
    name: Name | None = None
    unit: Annotated[str, Constraint(max_length=32)] | None = None
    kind: Kind | None = None
    max_gap_s: Gap | None = None
    cal_scale: float | None = None
    cal_offset: float | None = None
    expression: Expression | None = None


class KeyIn(Strict):
    kind: Literal["write", "read"]
    device: Annotated[str, Constraint(min_length=1, max_length=64)] | None = None
    label: Annotated[str, Constraint(max_length=200)] | None = None


class DeviceIn(Strict):
    device: Annotated[str, Constraint(min_length=1, max_length=64)]
    label: Annotated[str, Constraint(max_length=200)] | None = None


# -- serializers -----------------------------------------------------------------------------


def field_json(field: Field) -> dict[str, Any]:
    return {
        "number": field.number,
        "name": field.name,
        "unit": field.unit,
        "kind": field.kind,
        "max_gap_s": field.max_gap_s,
        "cal_scale": field.cal_scale,
        "cal_offset": field.cal_offset,
        "expression": field.expression,
    }


def channel_json(channel: Channel) -> dict[str, Any]:
    return {
        "id": channel.id,
        "name": channel.name,
        "description": channel.description,
        "public": channel.public,
        "latitude": channel.latitude,
        "longitude": channel.longitude,
        "elevation": channel.elevation,
        "fields": [field_json(f) for f in channel.fields],
        "last_entry_id": channel.last_entry_id,
        "min_interval_s": channel.min_interval_s,
        "retention_days": channel.retention_days,
        "mqtt_topic_prefix": channel.mqtt_topic_prefix,
        "created_at": channel.created_at.isoformat(),
        "updated_at": channel.updated_at.isoformat(),
    }


def key_json(key: ApiKey, raw: str | None = None) -> dict[str, Any]:
    body = {
        "id": key.id,
        "kind": key.kind,
        "prefix": key.prefix,
        "channel_id": key.channel_id,
        "device": key.device_id,
        "label": key.label,
        "created_at": key.created_at.isoformat(),
        "revoked_at": key.revoked_at.isoformat() if key.revoked_at else None,
    }
    if raw is not None:
        body["key"] = raw  # shown once, never stored
    return body


def device_json(device: Device) -> dict[str, Any]:
    return {"device": device.device_id, "label": device.label}


def created(body: dict[str, Any], location: str) -> Response:
    """201 with a Location header."""
    response = jsonify(body)
    response.status_code = 201
    response.headers["Location"] = location
    return response


def no_content() -> Response:
    return Response(status=204)


# -- channels --------------------------------------------------------------------------------


@api_bp.get("/channels")
def list_channels() -> Response:
    """The caller's channels."""
    return jsonify([channel_json(c) for c in manage.channels_of(current_api_user())])


@api_bp.post("/channels")
def create_channel() -> Response:
    """Create a channel: 201 + Location; a duplicate name is 409."""
    user = current_api_user()
    body = parse_body(ChannelIn)
    settings = body.model_dump(exclude={"name", "fields", "metadata", "tags"}, exclude_unset=True)
    names = [f if isinstance(f, str) else f.name for f in body.fields]
    channel = manage.create_channel(user, body.name, fields=names, **settings)
    for spec, field in zip(body.fields, channel.fields, strict=False):
        if isinstance(spec, FieldIn):
            _apply_settings(field, spec)
    if body.metadata is not None or body.tags is not None:
        channelmeta.update(channel, metadata=body.metadata, tags=body.tags)
    return created(channel_json(channel), url_for("api.get_channel", channel_id=channel.id))


@api_bp.get("/channels/<int:channel_id>")
def get_channel(channel_id: int) -> Response:
    """One of the caller's channels (404 for others')."""
    return jsonify(channel_json(manage.channel_for(current_api_user(), channel_id)))


@api_bp.patch("/channels/<int:channel_id>")
def update_channel(channel_id: int) -> Response:
    """Change a channel's settings."""
    channel = manage.channel_for(current_api_user(), channel_id)
    changes = parse_body(ChannelPatch).model_dump(exclude_unset=True)
    meta = {k: changes.pop(k) for k in ("metadata", "tags") if k in changes}
    with manage.one_change():
        if meta:
            channelmeta.update(channel, **meta, commit=False)
        manage.update_channel(channel, **changes)
    return jsonify(channel_json(channel))


@api_bp.delete("/channels/<int:channel_id>")
def delete_channel(channel_id: int) -> Response:
    """Delete a channel and all its data."""
    manage.delete_channel(manage.channel_for(current_api_user(), channel_id))
    return no_content()


# -- fields ----------------------------------------------------------------------------------


@api_bp.get("/channels/<int:channel_id>/fields")
def list_fields(channel_id: int) -> Response:
    channel = manage.channel_for(current_api_user(), channel_id)
    return jsonify([field_json(f) for f in channel.fields])


@api_bp.post("/channels/<int:channel_id>/fields")
def create_field(channel_id: int) -> Response:
    """Add a field with the next free number."""
    channel = manage.channel_for(current_api_user(), channel_id)
    body = parse_body(FieldIn)
    field = manage.add_field(channel, body.name, unit=body.unit)
    _apply_settings(field, body)
    location = url_for("api.get_field", channel_id=channel.id, number=field.number)
    return created(field_json(field), location)


def _apply_settings(field: Field, spec: FieldIn) -> None:
    """A new field's settings beyond its name (set after it exists: update_field checks them)."""
    settings = spec.model_dump(exclude={"name"}, exclude_none=True)
    if settings:
        manage.update_field(field, **settings)


@api_bp.get("/channels/<int:channel_id>/fields/<int:number>")
def get_field(channel_id: int, number: int) -> Response:
    channel = manage.channel_for(current_api_user(), channel_id)
    return jsonify(field_json(manage.get_field(channel, number)))


@api_bp.patch("/channels/<int:channel_id>/fields/<int:number>")
def update_field(channel_id: int, number: int) -> Response:
    channel = manage.channel_for(current_api_user(), channel_id)
    changes = parse_body(FieldPatch).model_dump(exclude_unset=True)
    return jsonify(field_json(manage.update_field(manage.get_field(channel, number), **changes)))


@api_bp.get("/channels/<int:channel_id>/fields/<int:number>/calibrations")
def field_calibrations(channel_id: int, number: int) -> Response:
    """The field's calibration changes, oldest first: readings stored after each one used it."""
    field = manage.get_field(manage.channel_for(current_api_user(), channel_id), number)
    return jsonify(
        [
            {
                "since": format_time(c.since_us, dt.UTC),
                "since_us": c.since_us,
                "cal_scale": c.cal_scale,
                "cal_offset": c.cal_offset,
            }
            for c in manage.calibrations(field)
        ]
    )


@api_bp.delete("/channels/<int:channel_id>/fields/<int:number>")
def delete_field(channel_id: int, number: int) -> Response:
    channel = manage.channel_for(current_api_user(), channel_id)
    manage.delete_field(manage.get_field(channel, number))
    return no_content()


# -- keys ------------------------------------------------------------------------------------


@api_bp.get("/channels/<int:channel_id>/keys")
def list_keys(channel_id: int) -> Response:
    channel = manage.channel_for(current_api_user(), channel_id)
    return jsonify([key_json(k) for k in manage.keys_of(channel)])


@api_bp.post("/channels/<int:channel_id>/keys")
def create_key(channel_id: int) -> Response:
    """Create a write or read key; the key itself is in this response only."""
    user = current_api_user()
    channel = manage.channel_for(user, channel_id)
    body = parse_body(KeyIn)
    key, raw = manage.create_key(
        user, KeyKind(body.kind), channel=channel, device=body.device, label=body.label
    )
    return created(key_json(key, raw), url_for("api.get_key", channel_id=channel.id, key_id=key.id))


@api_bp.get("/channels/<int:channel_id>/keys/<int:key_id>")
def get_key(channel_id: int, key_id: int) -> Response:
    channel = manage.channel_for(current_api_user(), channel_id)
    return jsonify(key_json(manage.key_by_id(key_id, channel=channel)))


@api_bp.delete("/channels/<int:channel_id>/keys/<int:key_id>")
def revoke_key(channel_id: int, key_id: int) -> Response:
    """Revoke a key; it is refused at once."""
    channel = manage.channel_for(current_api_user(), channel_id)
    manage.revoke_key(manage.key_by_id(key_id, channel=channel))
    return no_content()


# -- devices ---------------------------------------------------------------------------------


@api_bp.get("/channels/<int:channel_id>/devices")
def list_devices(channel_id: int) -> Response:
    channel = manage.channel_for(current_api_user(), channel_id)
    return jsonify([device_json(d) for d in channel.devices])


@api_bp.post("/channels/<int:channel_id>/devices")
def add_device(channel_id: int) -> Response:
    """Allow a device to write; once the list is non-empty, other devices get 403."""
    channel = manage.channel_for(current_api_user(), channel_id)
    body = parse_body(DeviceIn)
    device = manage.add_device(channel, body.device, label=body.label)
    return created(device_json(device), url_for("api.list_devices", channel_id=channel.id))


@api_bp.delete("/channels/<int:channel_id>/devices/<device>")
def remove_device(channel_id: int, device: str) -> Response:
    channel = manage.channel_for(current_api_user(), channel_id)
    manage.remove_device(channel, device)
    return no_content()
