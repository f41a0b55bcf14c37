"""API keys and access: generation, hashing, lookup, and the two rules of who may write and read.

Each rule is stated here once, as a SQL fragment beside its Python twin, and
every statement that needs a rule builds it from the fragment (the key lookup,
PostgreSQL's one-statement write in :mod:`fieldstation.ingest`, the read
statements of :mod:`fieldstation.query`). ``tests/test_access_rules.py`` holds
each pair equal on generated keys, channels and devices, on both engines.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from dataclasses import dataclass
from typing import Any

from flask import request
from sqlalchemy import select

from fieldstation import db as database
from fieldstation.db import Dialect
from fieldstation.errors import Forbidden, Unauthorized
from fieldstation.extensions import db
from fieldstation.models import ApiKey, Channel, KeyKind, User

_ALPHABET = string.ascii_uppercase + string.digits
#: ThingSpeak-style 16-character keys: 82 bits, short enough to type into firmware.
KEY_LENGTH = 16


def generate_key(length: int = KEY_LENGTH) -> str:
    """A new random key (upper-case letters and digits)."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def hash_key(raw: str) -> str:
    """SHA-256 of a key; keys are random, so no salt or slow hash is needed."""
    return hashlib.sha256(raw.strip().encode("utf-8", "surrogateescape")).hexdigest()


# -- writing ----------------------------------------------------------------------------------


def key_row_sql(device: str, key_hash: str, source: str = "api_keys k") -> str:
    """A live key by its hash, as the row the write rule reads (:data:`KeyRow`).

    ``device`` and ``key_hash`` are SQL expressions (placeholders or columns of
    ``source``). A key bound to a device writes as that device, so the
    allow-list check uses the bound device first.
    """
    return (
        "SELECT k.id, k.kind, k.channel_id, k.device_id, "  # noqa: S608
        "EXISTS (SELECT 1 FROM devices d WHERE d.channel_id = k.channel_id) AS restricted, "
        "EXISTS (SELECT 1 FROM devices d WHERE d.channel_id = k.channel_id "
        f"AND d.device_id = COALESCE(k.device_id, {device})) AS allowed "
        f"FROM {source} WHERE k.key_hash = {key_hash} AND k.revoked_at IS NULL"
    )


def may_write_sql(key: str, device: str) -> str:
    """The write rule over a :func:`key_row_sql` row named ``key``, for the device ``device`` names.

    SQL twin of :func:`grant` (which also says why a key fails): a write key of a
    channel, used by its bound device or by any device when unbound, and a device
    on the channel's allow-list when it has one.
    """
    return (
        f"{key}.kind = '{KeyKind.WRITE.value}' AND {key}.channel_id IS NOT NULL "
        f"AND ({key}.device_id IS NULL OR {device} IS NULL OR {key}.device_id = {device}) "
        f"AND (NOT {key}.restricted OR {key}.allowed)"
    )


#: (id, kind, channel id, bound device, channel restricts devices, device allowed) of a live key.
KeyRow = tuple[int, str, int | None, str | None, bool, bool]

_WRITE_KEY = database.per_dialect(lambda d: d.bind(key_row_sql("CAST(? AS VARCHAR(64))", "?")))


@dataclass(frozen=True, slots=True)
class WriteGrant:
    """What a write key allows: one channel, optionally as one device."""

    channel_id: int
    device: str | None
    key_id: int


def grant(row: KeyRow | None, device: str | None) -> WriteGrant:
    """The write rule applied to a key's row (:func:`lookup_write_key`); SQL twin: :func:`may_write_sql`.

    :raise Unauthorized: no such live key, or not a write key of a channel.
    :raise Forbidden: the device is not the key's device or not on the channel's allow-list.
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


def key_row(row: Any) -> KeyRow | None:
    """A :func:`key_row_sql` row with Python types (SQLite gives 0/1 for booleans)."""
    if row is None:
        return None
    key_id, kind, channel_id, bound, restricted, allowed = row
    return int(key_id), str(kind), channel_id, bound, bool(restricted), bool(allowed)


def lookup_write_key(cursor: Any, dialect: Dialect, key_hash: str, device: str | None) -> KeyRow | None:
    """A live key's row on ``cursor`` (one fixed statement: every write runs it first)."""
    cursor.execute(_WRITE_KEY[dialect.name], (device, key_hash))
    return key_row(cursor.fetchone())


def authorize_write(raw_key: str | None, device: str | None = None) -> WriteGrant:
    """Check a write key (and the device allow-list) in one query.

    :raise Unauthorized: no key, unknown, revoked or not a write key.
    :raise Forbidden: the device is not the key's device or not on the channel's allow-list.
    """
    if not raw_key:
        raise Unauthorized("a write API key is required")
    with database.cursor(_WRITE_KEY) as (cursor, statement):
        cursor.execute(statement, (device, hash_key(raw_key)))
        row = key_row(cursor.fetchone())
    return grant(row, device)


def trusts_topic(channel_id: int, topic: str) -> WriteGrant:
    """Authorise an MQTT message by its topic: the channel trusts a topic prefix (broker ACLs).

    :raise Unauthorized: the channel trusts no prefix, or not one this topic starts with.
    """
    prefix = db.session.scalar(select(Channel.mqtt_topic_prefix).where(Channel.id == channel_id))
    if not prefix or not topic.startswith(prefix):
        raise Unauthorized("a write API key is required (the channel does not trust this topic)")
    return WriteGrant(channel_id, None, 0)


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeyScope:
    """What a live key may read besides public channels: its owner's channels (a user key) or its own."""

    owner_id: int | None
    channel_id: int | None

    def may_read(self, public: bool, owner_id: int, channel_id: int) -> bool:
        """The read rule; SQL twin: :func:`readable_sql`."""
        return public or owner_id == self.owner_id or channel_id == self.channel_id


#: No key (or a refused one): public channels only.
NO_SCOPE = KeyScope(None, None)

#: The scope of a live key by its hash, as columns ``owner_id`` and ``channel_id`` (one ``?``).
KEY_SCOPE_SQL = (
    f"SELECT CASE WHEN kind = '{KeyKind.USER.value}' THEN user_id END AS owner_id, "  # noqa: S608
    f"CASE WHEN kind <> '{KeyKind.USER.value}' THEN channel_id END AS channel_id "
    "FROM api_keys WHERE key_hash = ? AND revoked_at IS NULL"
)

_KEY_SCOPE = database.per_dialect(lambda d: d.bind(KEY_SCOPE_SQL))


def readable_sql(channel: str, owner_id: str, channel_id: str) -> str:
    """The read rule for the channel row named ``channel`` and a key scope's two columns or parameters.

    SQL twin of :meth:`KeyScope.may_read`: public channels, the scope owner's
    channels, the scope's own channel. NULL (no scope) grants nothing.
    """
    return f"({channel}.public OR {channel}.owner_id = {owner_id} OR {channel}.id = {channel_id})"


def key_scope(raw_key: str | None) -> KeyScope | None:
    """The scope of a live key; None when the key is unknown or revoked; :data:`NO_SCOPE` without one."""
    if not raw_key:
        return NO_SCOPE
    with database.cursor(_KEY_SCOPE) as (cursor, statement):
        cursor.execute(statement, (hash_key(raw_key),))
        row = cursor.fetchone()
    return None if row is None else KeyScope(row[0], row[1])


def can_read(channel: Channel, raw_key: str | None) -> bool:
    """Whether ``raw_key`` (or no key) may read ``channel``: :meth:`KeyScope.may_read`."""
    if channel.public:
        return True
    scope = key_scope(raw_key)
    return scope is not None and scope.may_read(channel.public, channel.owner_id, channel.id)


# -- management keys --------------------------------------------------------------------------


def find_key(raw_key: str | None) -> ApiKey | None:
    """The live (not revoked) key with this value, or None."""
    if not raw_key:
        return None
    return db.session.scalar(
        select(ApiKey).where(ApiKey.key_hash == hash_key(raw_key), ApiKey.revoked_at.is_(None))
    )


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
