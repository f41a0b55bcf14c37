"""A channel's metadata: ThingSpeak's ``metadata`` text and ``tags``, and key-value pairs.

The pairs are what a device or a script keeps beside its readings: a station's
firmware version, a calibration date, a sensor's serial. Keys are strings (1-64
characters, no control characters), values any JSON; all pairs of a channel
together are at most :data:`MAX_PAIRS_BYTES` of JSON, so the store stays small.
ThingSpeak's ``metadata`` is free text (JSON, XML, anything) up to
:data:`MAX_METADATA_BYTES`; ``tags`` a list of short names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from fieldstation.errors import BadRequest
from fieldstation.extensions import db
from fieldstation.models import Channel, ChannelMeta
from fieldstation.points import UNSTORABLE

MAX_PAIRS_BYTES = 16 * 1024
MAX_KEY_LENGTH = 64
MAX_METADATA_BYTES = 64 * 1024
MAX_TAGS = 50
MAX_TAG_LENGTH = 100


@dataclass
class Meta:
    """A channel's metadata as callers use it."""

    metadata: str = ""
    tags: list[str] = field(default_factory=list)
    pairs: dict[str, Any] = field(default_factory=dict)


def read(channel_id: int) -> Meta:
    """The channel's metadata (empty when it has none)."""
    row = db.session.get(ChannelMeta, channel_id)
    if row is None:
        return Meta()
    return Meta(row.metadata_text, json.loads(row.tags), json.loads(row.pairs))


def update(
    channel: Channel,
    *,
    metadata: str | None = None,
    tags: list[str] | str | None = None,
    pairs: dict[str, Any] | None = None,
    set_pairs: dict[str, Any] | None = None,
    unset: list[str] | None = None,
    commit: bool = True,
) -> Meta:
    """Change what is given: the text, the tags, all pairs (``pairs``), or some (``set_pairs``, ``unset``).

    :raise BadRequest: too long, control characters, a bad key, or the pairs beyond the cap;
        nothing changes then.
    """
    current = read(channel.id)
    if metadata is not None:
        current.metadata = _check_metadata(metadata)
    if tags is not None:
        current.tags = _check_tags(tags)
    if pairs is not None:
        current.pairs = {}
        set_pairs = {**pairs, **(set_pairs or {})}
    for key, value in (set_pairs or {}).items():
        current.pairs[_check_key(key)] = value
    for key in unset or []:
        current.pairs.pop(key, None)
    encoded = _encode_pairs(current.pairs)
    row = db.session.get(ChannelMeta, channel.id) or ChannelMeta(channel_id=channel.id)
    row.metadata_text, row.tags, row.pairs = current.metadata, json.dumps(current.tags), encoded
    db.session.add(row)
    if commit:
        db.session.commit()
    else:
        db.session.flush()
    return current


def _check_metadata(text: str) -> str:
    if not isinstance(text, str):
        raise BadRequest("metadata must be text")
    if len(text.encode()) > MAX_METADATA_BYTES:
        raise BadRequest(f"metadata is longer than {MAX_METADATA_BYTES} bytes")
    if "\x00" in text:
        raise BadRequest("metadata may not hold NUL characters")
    return text


def _check_tags(tags: list[str] | str) -> list[str]:
    """Tags as a list, or ThingSpeak's comma-separated string; blanks dropped, duplicates once."""
    items = tags.split(",") if isinstance(tags, str) else tags
    if not isinstance(items, list) or not all(isinstance(t, str) for t in items):
        raise BadRequest("tags must be a list of strings or a comma-separated string")
    out: list[str] = []
    for tag in (t.strip() for t in items):
        if not tag or tag in out:
            continue
        if len(tag) > MAX_TAG_LENGTH or UNSTORABLE.search(tag):
            raise BadRequest(f"a tag is 1-{MAX_TAG_LENGTH} characters without control characters")
        out.append(tag)
    if len(out) > MAX_TAGS:
        raise BadRequest(f"at most {MAX_TAGS} tags")
    return out


def _check_key(key: object) -> str:
    if not isinstance(key, str) or not 1 <= len(key) <= MAX_KEY_LENGTH or UNSTORABLE.search(key):
        raise BadRequest(f"a key is 1-{MAX_KEY_LENGTH} characters without control characters")
    return key


def _encode_pairs(pairs: dict[str, Any]) -> str:
    try:
        text = json.dumps(pairs, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise BadRequest(f"values must be JSON: {exc}") from None
    if len(text.encode()) > MAX_PAIRS_BYTES:
        raise BadRequest(f"a channel's pairs take at most {MAX_PAIRS_BYTES} bytes of JSON")
    if "\\u0000" in text:
        raise BadRequest("values may not hold NUL characters")
    return text
