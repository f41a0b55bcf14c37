"""MQTT topic grammar and payload parsing into a :class:`~fieldstation.points.Batch`. Pure.

Accepted schemes (docs/workers.md has the reference):

- ``channels/<id>/publish``: ThingSpeak's form payload ``field1=…&status=…&created_at=…``;
- ``channels/<id>/publish/fields/field<N>``: one bare value;
- ``channels/<id>/publish/<write_key>`` and ``…/fields/field<N>/<write_key>``: the pre-2021
  ThingSpeak broker's forms with the key in the topic;
- ``fieldstation/<id>/entries``: JSON, one entry object, a list of them, or
  ``{"api_key": …, "entries": [...]}``;
- ``tele/<device>/SENSOR``: Tasmota's telemetry JSON, mapped to a channel's fields by configured
  paths such as ``AM2301.Temperature``.

Every failure is a :class:`~fieldstation.errors.BadRequest` whose message is the reason the
listener logs; nothing else escapes :func:`parse`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fieldstation.errors import BadRequest
from fieldstation.points import (
    Batch,
    Entry,
    Value,
    check_ts,
    clean_status,
    get_zone,
    normalize_device,
    parse_float,
    parse_time,
    parse_value,
)
from fieldstation.timeunits import US

#: Largest payload parsed (bytes); larger messages are rejected unread.
MAX_PAYLOAD = 1024 * 1024
#: Largest field number a topic or payload may name.
MAX_FIELD = 10_000
_MAX_ID = 2**31 - 1

_MAX_PARAMS = 100
_KEY_RE = re.compile(r"[A-Za-z0-9]{1,64}")
_ID_RE = re.compile(r"[1-9][0-9]{0,9}")
_FIELD_RE = re.compile(r"field([1-9][0-9]{0,4})")

#: Subscriptions that cover every scheme above. ``channels/+/publish/#`` also matches
#: ``channels/<id>/publish`` itself; subscribing to both would deliver those twice.
DEFAULT_TOPICS = ("channels/+/publish/#", "fieldstation/+/entries", "tele/+/SENSOR")

FieldNames = Callable[[int], Mapping[str, int]]


def _no_names(channel_id: int) -> Mapping[str, int]:
    return {}


@dataclass(frozen=True, slots=True)
class TasmotaMap:
    """How one Tasmota device's SENSOR telemetry maps onto a channel."""

    channel_id: int
    #: Dotted JSON path (``AM2301.Temperature``) -> field number.
    fields: Mapping[str, int]
    #: Optional write key; without one the channel must trust the topic prefix.
    write_key: str | None = None
    #: IANA zone of the device clock; when set, Tasmota's ``Time`` is used, else server time.
    timezone: str | None = None


@dataclass(frozen=True, slots=True)
class TopicConfig:
    """What parsing needs beyond the message itself."""

    tasmota: Mapping[str, TasmotaMap] = field(default_factory=dict)
    #: channel id -> {field name: number}, for JSON entries that name fields.
    field_names: FieldNames = _no_names
    max_entries: int = 10_000


@dataclass(frozen=True, slots=True)
class Message:
    """A parsed message: the batch to write and the credentials it carried."""

    topic: str
    batch: Batch
    #: Write key from the topic or payload; ``None`` means "trust the topic prefix".
    key: str | None = None


def parse(topic: str, payload: bytes, config: TopicConfig | None = None) -> Message:
    """Parse one MQTT message.

    :raise BadRequest: unknown topic, malformed payload or values; the message is the reason.
    """
    config = config or TopicConfig()
    if len(payload) > MAX_PAYLOAD:
        raise BadRequest(f"payload larger than {MAX_PAYLOAD} bytes", code="too_large")
    try:
        return _parse(topic, payload, config)
    except (ValueError, OverflowError, RecursionError, TypeError) as exc:
        # Hostile numbers (10**5000, 1e999) and nesting surface as these from the stdlib.
        raise BadRequest(f"malformed payload: {str(exc)[:80]}", code="bad_payload") from None


def _parse(topic: str, payload: bytes, config: TopicConfig) -> Message:
    parts = topic.split("/")
    if len(parts) >= 3 and parts[0] == "channels" and parts[2] == "publish":
        return _thingspeak(topic, parts, payload)
    if len(parts) == 3 and parts[0] == "fieldstation" and parts[2] == "entries":
        return _json_entries(topic, _channel_id(parts[1]), payload, config)
    if len(parts) == 3 and parts[0] == "tele" and parts[2] == "SENSOR":
        return _tasmota(topic, parts[1], payload, config)
    raise BadRequest(f"unknown topic scheme: {topic[:100]!r}", code="bad_topic")


def loggable(topic: str) -> str:
    """The topic as logs show it: a write key in it cut to its first four characters.

    ThingSpeak's older topics carry the key (``channels/<id>/publish/<key>``,
    ``…/fields/field<N>/<key>``); a refused message's log line must not hand out a
    working key to whoever reads the logs. The dashboard lists keys by the same prefix.
    """
    parts = topic.split("/")
    if len(parts) >= 4 and parts[0] == "channels" and parts[2] == "publish":
        at = 5 if parts[3] == "fields" else 3
        if at < len(parts) and parts[at]:
            parts[at] = parts[at][:4] + "…"
    return "/".join(parts)[:200]


# -- ThingSpeak ------------------------------------------------------------------------------


def _thingspeak(topic: str, parts: list[str], payload: bytes) -> Message:
    channel_id = _channel_id(parts[1])
    rest = parts[3:]
    key: str | None = None
    if len(rest) in (2, 3) and rest[0] == "fields":
        if len(rest) == 3:
            key = _topic_key(rest[2])
        number = _field_number(rest[1])
        value = _value(_text(payload))
        return Message(topic, Batch(channel_id, [Entry({number: value})]), key)
    if len(rest) == 1:
        key = _topic_key(rest[0])
    elif rest:
        raise BadRequest(f"unknown ThingSpeak topic: {loggable(topic)!r}", code="bad_topic")
    entry, payload_key = _form_entry(_text(payload))
    return Message(topic, Batch(channel_id, [entry]), key or payload_key)


def _form_entry(text: str) -> tuple[Entry, str | None]:
    """ThingSpeak's form payload: fieldN, status, created_at, lat, long, elevation, api_key."""
    text = text.strip()
    if "%" in text or "+" in text:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=_MAX_PARAMS)
    else:
        # Nothing to unquote: the same pairs as parse_qsl, at a third of the cost (hot path).
        if text.count("&") >= _MAX_PARAMS:
            raise BadRequest(f"at most {_MAX_PARAMS} parameters", code="bad_payload")
        pairs = [(name, raw) for name, _, raw in (part.partition("=") for part in text.split("&") if part)]
    values: dict[int, Value] = {}
    meta: dict[str, Any] = {}
    key: str | None = None
    for name, raw in pairs:
        if (match := _FIELD_RE.fullmatch(name)) is not None:
            if raw.strip():
                values[int(match.group(1))] = _value(raw)
        elif name in ("api_key", "key"):
            key = raw.strip() or None
        elif name in ("status", "created_at", "lat", "long", "elevation", "timestamp"):
            meta[name] = raw
        elif name not in ("headers",):
            raise BadRequest(f"unknown parameter {name[:40]!r}", code="bad_payload")
    ts = meta.get("created_at") or meta.get("timestamp")
    entry = Entry(
        values,
        ts=_time(ts) if ts else None,
        status=clean_status(meta.get("status") or None),
        latitude=_optional_float(meta.get("lat"), "lat"),
        longitude=_optional_float(meta.get("long"), "long"),
        elevation=_optional_float(meta.get("elevation"), "elevation"),
    )
    return _nonempty(entry), key


# -- JSON entries ----------------------------------------------------------------------------


def _json_entries(topic: str, channel_id: int, payload: bytes, config: TopicConfig) -> Message:
    doc = _json(payload)
    key: str | None = None
    device: str | None = None
    if isinstance(doc, dict) and "entries" in doc:
        unknown = set(doc) - {"entries", "api_key", "device"}
        if unknown:
            raise BadRequest(f"unknown key {sorted(unknown)[0][:40]!r}", code="bad_payload")
        key = _optional_str(doc.get("api_key"), "api_key")
        device = _optional_str(doc.get("device"), "device")
        items = doc["entries"]
    elif isinstance(doc, dict):
        key = _optional_str(doc.pop("api_key", None), "api_key")
        items = [doc]
    else:
        items = doc
    if not isinstance(items, list) or not items:
        raise BadRequest("entries must be a non-empty list of objects", code="bad_payload")
    if len(items) > config.max_entries:
        raise BadRequest(f"at most {config.max_entries} entries per message", code="too_large")
    names = _lazy_names(config.field_names, channel_id)
    entries = [_json_entry(item, names) for item in items]
    return Message(topic, Batch(channel_id, entries, normalize_device(device) if device else None), key)


_ENTRY_KEYS = {"created_at", "timestamp", "fields", "values", "status", "latitude", "longitude", "elevation"}


def _json_entry(item: object, names: Callable[[], Mapping[str, int]]) -> Entry:
    """One entry of the JSON API's shape."""
    if not isinstance(item, dict):
        raise BadRequest("each entry must be an object", code="bad_payload")
    unknown = set(item) - _ENTRY_KEYS
    if unknown:
        raise BadRequest(f"unknown entry key {sorted(unknown)[0][:40]!r}", code="bad_payload")
    if "fields" in item and "values" in item:
        raise BadRequest("give either fields or values, not both", code="bad_payload")
    raw_values = item.get("fields", item.get("values"))
    if not isinstance(raw_values, dict):
        raise BadRequest("an entry needs a fields object", code="bad_payload")
    values: dict[int, Value] = {}
    for name, raw in raw_values.items():
        if raw is None:
            continue
        values[_field_ref(name, names)] = _value(raw)
    ts = item.get("created_at", item.get("timestamp"))
    if "created_at" in item and "timestamp" in item:
        raise BadRequest("give either created_at or timestamp, not both", code="bad_payload")
    if ts is not None and not isinstance(ts, str | int | float):
        raise BadRequest("created_at must be a string or number", code="bad_time")
    entry = Entry(
        values,
        ts=None if ts is None else parse_time(ts),
        status=clean_status(item.get("status")),
        latitude=_optional_float(item.get("latitude"), "latitude"),
        longitude=_optional_float(item.get("longitude"), "longitude"),
        elevation=_optional_float(item.get("elevation"), "elevation"),
    )
    return _nonempty(entry)


def _field_ref(name: str, names: Callable[[], Mapping[str, int]]) -> int:
    """``"1"``, ``"field1"`` or a field's name -> its number."""
    if _ID_RE.fullmatch(name) and int(name) <= MAX_FIELD:
        return int(name)
    if (match := _FIELD_RE.fullmatch(name)) is not None:
        return int(match.group(1))
    number = names().get(name)
    if number is None:
        raise BadRequest(f"channel has no field named {name[:40]!r}", code="unknown_field")
    return number


def _lazy_names(lookup: FieldNames, channel_id: int) -> Callable[[], Mapping[str, int]]:
    """Look the channel's field names up only if an entry names a field."""
    cache: list[Mapping[str, int]] = []

    def names() -> Mapping[str, int]:
        if not cache:
            cache.append(lookup(channel_id))
        return cache[0]

    return names


# -- Tasmota ---------------------------------------------------------------------------------


def _tasmota(topic: str, device: str, payload: bytes, config: TopicConfig) -> Message:
    mapping = config.tasmota.get(device)
    if mapping is None:
        raise BadRequest(f"no Tasmota mapping for device {device[:64]!r}", code="unmapped")
    doc = _json(payload)
    if not isinstance(doc, dict):
        raise BadRequest("Tasmota SENSOR payload must be a JSON object", code="bad_payload")
    values: dict[int, Value] = {}
    for path, number in mapping.fields.items():
        found = _lookup(doc, path)
        if found is not None:
            values[number] = _value(found)
    ts: int | None = None
    if mapping.timezone is not None and isinstance(doc.get("Time"), str):
        ts = parse_time(doc["Time"], get_zone(mapping.timezone))
    entry = _nonempty(Entry(values, ts=ts))
    return Message(topic, Batch(mapping.channel_id, [entry], normalize_device(device)), mapping.write_key)


def _lookup(doc: Mapping[str, Any], path: str) -> object:
    """Follow a dotted path (``AM2301.Temperature``) through nested objects; None if absent."""
    node: object = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return None if isinstance(node, dict | list) else node


# -- small helpers ---------------------------------------------------------------------------


def _channel_id(text: str) -> int:
    if not _ID_RE.fullmatch(text) or int(text) > _MAX_ID:
        raise BadRequest(f"not a channel id: {text[:40]!r}", code="bad_topic")
    return int(text)


def _field_number(text: str) -> int:
    match = _FIELD_RE.fullmatch(text)
    if match is None or int(match.group(1)) > MAX_FIELD:
        raise BadRequest(f"not a field: {text[:40]!r}", code="bad_topic")
    return int(match.group(1))


def _topic_key(text: str) -> str:
    if not _KEY_RE.fullmatch(text):
        raise BadRequest("the write key in the topic is malformed", code="bad_topic")
    return text


def _text(payload: bytes) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("payload is not UTF-8", code="bad_payload") from None


def _json(payload: bytes) -> Any:
    try:
        return json.loads(_text(payload))
    except ValueError as exc:
        raise BadRequest(f"payload is not JSON: {str(exc)[:80]}", code="bad_payload") from None


def _time(raw: str) -> int:
    """parse_time, with a shortcut for whole epoch seconds (what firmware sends)."""
    if raw.isascii() and raw.isdigit() and len(raw) <= 10:
        return check_ts(int(raw) * US)
    return parse_time(raw)


def _value(raw: object) -> Value:
    if isinstance(raw, str) and not raw.strip():
        raise BadRequest("empty value", code="bad_value")
    return parse_value(raw)


def _optional_float(raw: object, name: str) -> float | None:
    if raw is None or raw == "":
        return None
    if isinstance(raw, bool):
        raise BadRequest(f"{name} must be a number", code="bad_value")
    return parse_float(raw, name)


def _optional_str(raw: object, name: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadRequest(f"{name} must be a string", code="bad_payload")
    return raw.strip() or None


def _nonempty(entry: Entry) -> Entry:
    if not entry.values and entry.status is None:
        raise BadRequest("the message carries no values", code="empty")
    return entry
