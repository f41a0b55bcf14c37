"""A ThingSpeak channel moved here: its settings JSON makes the channel, its CSV export the data.

The settings are what ``GET https://api.thingspeak.com/channels/<id>.json?api_key=<user key>``
answers (ThingSpeak's "Read Settings"): ``name``, ``description``, ``latitude``,
``longitude``, ``elevation``, ``public_flag``, ``field1``…``field8`` (the names of the
fields in use), ``metadata`` (free text) and ``tags`` (a list of ``{"id", "name"}``).
ThingSpeak has no units: they are given here, by field number. The channel keeps
ThingSpeak's field numbers, so the export's ``field3`` column lands in field 3.
"""

from __future__ import annotations

import json
import math
from typing import IO, Any

from fieldstation import channelmeta, manage
from fieldstation.errors import BadRequest
from fieldstation.models import Channel, User

TS_FIELDS = range(1, 9)


def read_settings(stream: IO[bytes]) -> dict[str, Any]:
    """The settings JSON as a dict.

    :raise BadRequest: not JSON, or not a channel's settings.
    """
    try:
        settings = json.load(stream)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BadRequest(f"the settings file is not JSON: {exc}") from None
    if not isinstance(settings, dict) or not isinstance(settings.get("name"), str):
        raise BadRequest("the settings file is not a ThingSpeak channel's settings (no name)")
    return settings


def create_channel(
    owner: User, settings: dict[str, Any], *, name: str | None = None, units: dict[int, str] | None = None
) -> Channel:
    """Make the channel of ``settings`` for ``owner``: fields at ThingSpeak's numbers, units, metadata.

    All of it or nothing (one transaction).
    """
    fields = {n: str(settings[f"field{n}"]) for n in TS_FIELDS if settings.get(f"field{n}")}
    if not fields:
        raise BadRequest("the settings name no fields (field1…field8)")
    units = units or {}
    unknown = sorted(set(units) - set(fields))
    if unknown:
        raise BadRequest(f"units for fields the channel does not have: {', '.join(map(str, unknown))}")
    latitude, longitude = _coordinate(settings.get("latitude")), _coordinate(settings.get("longitude"))
    if latitude == 0 and longitude == 0:  # ThingSpeak's "0.0", "0.0": no location set
        latitude = longitude = None
    with manage.one_change():
        numbers = sorted(fields)
        channel = manage.create_channel(
            owner,
            name or settings["name"],
            fields=[fields[numbers[0]]],
            description=str(settings.get("description") or ""),
            public=settings.get("public_flag") is True,
            latitude=latitude,
            longitude=longitude,
            elevation=_coordinate(settings.get("elevation")),
        )
        channel.fields[0].number = numbers[0]
        for number in numbers[1:]:
            manage.add_field(channel, fields[number], number=number)
        for number, unit in units.items():
            manage.update_field(manage.get_field(channel, number), unit=unit)
        channelmeta.update(
            channel,
            metadata=str(settings.get("metadata") or ""),
            tags=_tags(settings.get("tags")),
            commit=False,
        )
    return channel


def _coordinate(value: object) -> float | None:
    """ThingSpeak writes coordinates as strings ("0.0" when unset, "" for no elevation)."""
    if value in (None, ""):
        return None
    try:
        number = float(str(value))
    except ValueError:
        raise BadRequest(f"not a coordinate: {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise BadRequest("coordinates must be finite")
    return number


def _tags(value: object) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, list):
        return [str(t["name"]) if isinstance(t, dict) and "name" in t else str(t) for t in value]
    raise BadRequest("tags must be a list")
