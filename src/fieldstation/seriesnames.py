"""InfluxDB names of channel fields: ``measurement,tag=value,… field_key``.

A line-protocol write creates one field per measurement + tag set + field
key, named like ``climate,device=esp01,room=lab temperature`` (escaped
measurement, sorted escaped tags, a space, the escaped field key). Any other
field (made by ThingSpeak writes, the JSON API or by hand) reads as field key
= its name in a measurement named after the channel, without tags.
"""

from __future__ import annotations

from collections.abc import Container
from dataclasses import dataclass

from fieldstation.lineprotocol import ends_escaped, escape_key, escape_measurement, split_unescaped, unescape


@dataclass(frozen=True, slots=True)
class SeriesName:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    key: str

    def tag(self, name: str) -> str:
        """The value of a tag ('' when the series lacks it, as InfluxDB compares)."""
        return dict(self.tags).get(name, "")

    @property
    def series_key(self) -> str:
        """The series key as InfluxDB lists it (``SHOW SERIES``): escaped measurement, sorted escaped tags."""
        return ",".join(
            [
                escape_measurement(self.measurement),
                *(f"{escape_key(k)}={escape_key(v)}" for k, v in self.tags),
            ]
        )


def _split(text: str, sep: str) -> list[str] | None:
    """Split on unescaped ``sep`` as line protocol does; None when an escape dangles at the end."""
    return None if ends_escaped(text) else split_unescaped(text, sep)


def parse_field_name(name: str, channel_name: str) -> SeriesName:
    """The measurement, tags and field key a field's name stands for."""
    plain = SeriesName(channel_name, (), name)
    halves = _split(name, " ")
    if halves is None or len(halves) != 2 or not halves[0] or not halves[1]:
        return plain
    series = _split(halves[0], ",")
    if series is None or not series[0]:
        return plain
    tags = []
    for part in series[1:]:
        pair = _split(part, "=")
        if pair is None or len(pair) != 2 or not pair[0]:
            return plain
        tags.append((unescape(pair[0]), unescape(pair[1])))
    return SeriesName(unescape(series[0]), tuple(sorted(tags)), unescape(halves[1]))


def write_target(series: str, channel_name: str, existing: Container[str]) -> str:
    """The field a line-protocol series writes to: a field of its own name, else the plain field it reads as.

    Reads show a field not named like line protocol (``temperature``, made by a
    ThingSpeak write) as field key ``temperature`` of the measurement named after
    the channel. So on channel ``weather`` the line ``weather temperature=21``
    writes to that field (made with the plain name when missing), rather than
    make a second field that reads as the same series. A field already named as
    the series (line protocol made such fields before this rule) keeps its
    values; a key that would read differently as a plain name (``air\\ temp``)
    keeps the series name.
    """
    if series in existing:
        return series
    name = parse_field_name(series, channel_name)
    if name.measurement != channel_name or name.tags or parse_field_name(name.key, channel_name) != name:
        return series
    return name.key
