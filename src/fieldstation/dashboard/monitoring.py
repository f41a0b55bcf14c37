"""What the channel pages show of a channel's health: devices seen (and, later, alerts)."""

from __future__ import annotations

from typing import Any

from fieldstation import devices
from fieldstation.models import Channel
from fieldstation.points import now_us


def summary(channel: Channel) -> dict[str, Any]:
    """Devices seen on the channel, silent ones flagged, for the owner's channel page."""
    seen = devices.seen(channel.id, now_us())
    return {"devices": seen, "silent": [d for d in seen if d.silent]}
