"""Management API: the devices seen on a channel, their last write and silence (issue 19)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from flask import Response, jsonify
from pydantic import Field as Constraint

from fieldstation import devices, manage
from fieldstation.auth import current_api_user
from fieldstation.http import api_bp
from fieldstation.http.jsonbody import Strict, parse_body
from fieldstation.timeunits import now_us

Interval = Annotated[int, Constraint(ge=1, le=devices.MAX_INTERVAL_S)]


class ExpectedIn(Strict):
    #: Seconds of quiet after which a device counts as silent; null: back to the default.
    expected_interval_s: Interval | None


def _iso(us: int) -> str:
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat().replace("+00:00", "Z")


def seen_json(device: devices.DeviceSeen) -> dict[str, Any]:
    return {
        "device": device.device,
        "first_seen": _iso(device.first_seen_us),
        "last_seen": _iso(device.last_seen_us),
        "writes": device.writes,
        "entries": device.entries,
        "median_interval_s": device.median_interval_s,
        "expected_interval_s": device.expected_interval_s,
        "expected_from": device.expected_from,
        "silent": device.silent,
    }


def listing(channel_id: int) -> dict[str, Any]:
    """The channel's default expected interval and its devices seen."""
    expected = devices.expected(channel_id)
    return {
        "expected_interval_s": expected.get(""),
        "devices": [seen_json(d) for d in devices.seen(channel_id, now_us())],
    }


@api_bp.get("/channels/<int:channel_id>/seen-devices")
def list_seen_devices(channel_id: int) -> Response:
    """Devices that wrote to the channel, most recent first; ``silent`` when quiet too long."""
    channel = manage.channel_for(current_api_user(), channel_id)
    return jsonify(listing(channel.id))


@api_bp.patch("/channels/<int:channel_id>/seen-devices")
def set_channel_expected(channel_id: int) -> Response:
    """Set the expected interval of every device of the channel without one of its own."""
    channel = manage.channel_for(current_api_user(), channel_id)
    devices.set_expected(channel.id, None, parse_body(ExpectedIn).expected_interval_s)
    return jsonify(listing(channel.id))


@api_bp.patch("/channels/<int:channel_id>/seen-devices/<device>")
def set_device_expected(channel_id: int, device: str) -> Response:
    """Set one device's expected interval (also before it is first seen)."""
    channel = manage.channel_for(current_api_user(), channel_id)
    devices.set_expected(channel.id, device, parse_body(ExpectedIn).expected_interval_s)
    return jsonify(listing(channel.id))
