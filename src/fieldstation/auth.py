"""API keys: generation, hashing and lookup; who may write or manage what."""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from typing import TYPE_CHECKING

from flask import request
from sqlalchemy import select

from fieldstation.errors import Forbidden, Unauthorized
from fieldstation.extensions import db
from fieldstation.models import ApiKey, Channel, KeyKind, User
from fieldstation.points import Batch, Entry

if TYPE_CHECKING:
    from fieldstation.store import KeyRow, WriteResult

_ALPHABET = string.ascii_uppercase + string.digits
#: ThingSpeak-style 16-character keys: 82 bits, short enough to type into firmware.
KEY_LENGTH = 16


def generate_key(length: int = KEY_LENGTH) -> str:
    """A new random key (upper-case letters and digits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def hash_key(raw: str) -> str:
    """SHA-256 of a key; keys are random, so no salt or slow hash is needed."""
    return hashlib.sha256(raw.strip().encode("utf-8", "surrogateescape")).hexdigest()


@dataclass(frozen=True, slots=True)
class WriteGrant:
    """What a write key allows: one channel, optionally as one device."""

    channel_id: int
    device: str | None
    key_id: int


def authorize_write(raw_key: str | None, device: str | None = None) -> WriteGrant:
    """Check a write key (and the device allow-list) in one query.

    :raise Unauthorized: no key, unknown, revoked or not a write key.
    :raise Forbidden: the device is not the key's device or not on the channel's allow-list.
    """
    if not raw_key:
        raise Unauthorized("a write API key is required")
    from fieldstation.store import lookup_write_key  # the store runs the fixed hot-path SQL

    return _grant(lookup_write_key(hash_key(raw_key), device), device)


def _grant(row: KeyRow | None, device: str | None) -> WriteGrant:
    """The rules of a write key, applied to its row (``store.lookup_write_key``'s shape).

    ``store.write_single`` writes only when the same rules hold; keep the two in step.
    """
    if row is None or row[1] != KeyKind.WRITE:
        raise Unauthorized("invalid write API key")
    key_id, _, channel_id, bound_device, is_restricted, is_allowed = row
    if channel_id is None:
        raise Unauthorized("invalid write API key")
    if bound_device is not None and device is not None and device != bound_device:
        raise Forbidden(f"this key belongs to device {bound_device}")
    if is_restricted and not is_allowed:
        raise Forbidden("device is not on this channel's allow-list")
    return WriteGrant(channel_id, bound_device or device, key_id)


def write_entry(
    raw_key: str | None, device: str | None, entry: Entry, *, grant: WriteGrant | None = None
) -> tuple[WriteGrant, WriteResult]:
    """Authorise a write key and store one entry with it: :func:`authorize_write`, then ``store.write``.

    A single server-stamped entry takes one connection checkout for both on SQLite
    (``store.write_keyed``) and one round trip on PostgreSQL (``store.write_single``).
    What PostgreSQL's statement cannot decide (a refused key, the rate limit, an
    unknown field, a taken microsecond) goes the ordinary way, so every answer is
    the one the two steps give. A caller that already
    holds the key's ``grant`` (``/write`` checks it before its ``db``) saves the
    ordinary way its second lookup.

    :raise Unauthorized: no key, unknown, revoked or not a write key.
    :raise Forbidden: the device is not the key's device or not on the channel's allow-list.
    """
    from fieldstation import store

    if not raw_key:
        raise Unauthorized("a write API key is required")
    if entry.ts is None and grant is None and store.writes_keyed():
        return store.write_keyed(hash_key(raw_key), device, entry, lambda row: _grant(row, device))
    if entry.ts is None and store.fuses_single_writes():
        outcome = store.write_single(hash_key(raw_key), device, entry, KeyKind.WRITE.value)
        if isinstance(outcome, tuple):  # else a taken microsecond: nothing written, go the ordinary way
            row, result = outcome
            grant = _grant(row, device)
            if result is not None:
                return grant, result
            return grant, store.write(Batch(grant.channel_id, [entry], device=grant.device))
    grant = grant or authorize_write(raw_key, device)
    return grant, store.write(Batch(grant.channel_id, [entry], device=grant.device))


def trusts_topic(channel_id: int, topic: str) -> WriteGrant:
    """Authorise an MQTT message by its topic: the channel trusts a topic prefix (broker ACLs).

    :raise Unauthorized: the channel trusts no prefix, or not one this topic starts with.
    """
    prefix = db.session.scalar(select(Channel.mqtt_topic_prefix).where(Channel.id == channel_id))
    if not prefix or not topic.startswith(prefix):
        raise Unauthorized("a write API key is required (the channel does not trust this topic)")
    return WriteGrant(channel_id, None, 0)


def find_key(raw_key: str | None) -> ApiKey | None:
    """The live (not revoked) key with this value, or None."""
    if not raw_key:
        return None
    return db.session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(raw_key), ApiKey.revoked_at.is_(None))
    )


def can_read(channel: Channel, raw_key: str | None) -> bool:
    """Public channels are open; private ones need a key of that channel or the owner's user key."""
    if channel.public:
        return True
    key = find_key(raw_key)
    if key is None:
        return False
    if key.kind == KeyKind.USER:
        return key.user_id == channel.owner_id
    return key.channel_id == channel.id


def request_user_key() -> str | None:
    """The user key from ``Authorization: Bearer`` or ``X-Fieldstation-Key``."""
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.headers.get("X-Fieldstation-Key") or None


def current_api_user() -> User:
    """The user whose user key authenticates this request.

    :raise Unauthorized: missing, unknown or revoked user key.
    """
    key = find_key(request_user_key())
    if key is None or key.kind != KeyKind.USER:
        raise Unauthorized("a valid user key is required (Authorization: Bearer <key>)")
    user = db.session.get(User, key.user_id)
    if user is None:  # pragma: no cover - cascade deletes keys with their user
        raise Unauthorized("a valid user key is required")
    return user
