"""InfluxDB names of channel fields: ``measurement,tag=value,… field_key``.

A line-protocol write creates one field per measurement + tag set + field
key, named like ``climate,device=esp01,room=lab temperature`` (escaped
measurement, sorted escaped tags, a space, the escaped field key). Any other
field (made by ThingSpeak writes, the JSON API or by hand) reads as field key
= its name in a measurement named after the channel, without tags.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SeriesName:
    measurement: str
    tags: tuple[tuple[str, str], ...]
    key: str

    def tag(self, name: str) -> str:
        """The value of a tag ('' when the series lacks it, as InfluxDB compares)."""
        return dict(self.tags).get(name, "")


def _split(text: str, sep: str) -> list[str] | None:
    """Split on unescaped ``sep``; None when an escape dangles."""
    parts, current, i = [], [], 0
    while i < len(text):
        char = text[i]
        if char == "\\":
            if i + 1 >= len(text):
                return None
            current.append(text[i : i + 2])
            i += 2
            continue
        if char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(text: str) -> str:
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and i + 1 < len(text):
            out.append(text[i + 1])
            i += 2
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


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
        tags.append((_unescape(pair[0]), _unescape(pair[1])))
    return SeriesName(_unescape(series[0]), tuple(sorted(tags)), _unescape(halves[1]))
