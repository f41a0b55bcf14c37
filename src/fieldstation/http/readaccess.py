"""Who may read: the key a read request carries, and the channel it may see."""

from __future__ import annotations

from flask import request

from fieldstation import query
from fieldstation.auth import request_user_key
from fieldstation.query import ChannelInfo


def read_key() -> str | None:
    """The key of a read request: ``api_key``/``key`` parameter, ThingSpeak's headers, then the user
    key's (``Authorization: Bearer`` or ``X-Fieldstation-Key``)."""
    return (
        request.args.get("api_key")
        or request.args.get("key")
        or request.headers.get("X-THINGSPEAKAPIKEY")
        or request.headers.get("THINGSPEAKAPIKEY")
        or request_user_key()
    )


def channel_or_none(channel_id: int, numbers: tuple[int, int] = query.ALL_FIELDS) -> ChannelInfo | None:
    """The channel (with its fields numbered within ``numbers``) if this request's key may read it;
    None for unknown and forbidden alike."""
    return query.read_access(channel_id, read_key(), numbers)
