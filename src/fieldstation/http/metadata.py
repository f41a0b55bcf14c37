"""A channel's metadata over the management API: ThingSpeak's text and tags, and key-value pairs.

Readable with any key of the channel (read or write) or its owner's user key,
and without a key when the channel is public; changed with the channel's write
key (a device keeping its firmware version) or the owner's user key. Anyone
else gets 404, as for every channel they may not see.
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import Response, jsonify, request
from pydantic import Field as Constraint

from fieldstation import channelmeta
from fieldstation.auth import find_key, request_user_key
from fieldstation.errors import NotFound, Unauthorized
from fieldstation.extensions import db
from fieldstation.http import api_bp
from fieldstation.http.jsonbody import Strict, parse_body
from fieldstation.models import Channel, KeyKind


class MetadataPatch(Strict):
    metadata: Annotated[str, Constraint(max_length=channelmeta.MAX_METADATA_BYTES)] | None = None
    tags: list[Annotated[str, Constraint(max_length=channelmeta.MAX_TAG_LENGTH)]] | str | None = None
    #: Keys to set; a null value removes the key.
    pairs: dict[str, Any] | None = None


def meta_json(meta: channelmeta.Meta) -> dict[str, Any]:
    return {"metadata": meta.metadata, "tags": meta.tags, "pairs": meta.pairs}


def _channel(channel_id: int, *, write: bool) -> Channel:
    """The channel, if the request's key may read it (``write``: change it)."""
    channel = db.session.get(Channel, channel_id)
    raw = request_user_key() or request.args.get("api_key")
    key = find_key(raw)
    if channel is None:
        raise NotFound("no such channel")
    if key is None:
        if channel.public and not write:
            return channel
        if raw:
            raise Unauthorized("unknown or revoked key")
        raise NotFound("no such channel")
    if key.kind == KeyKind.USER:
        allowed = key.user_id == channel.owner_id
    else:
        allowed = key.channel_id == channel.id and (key.kind == KeyKind.WRITE or not write)
    if not allowed:
        raise NotFound("no such channel")
    return channel


@api_bp.get("/channels/<int:channel_id>/metadata")
def get_metadata(channel_id: int) -> Response:
    """The channel's metadata text, tags and key-value pairs."""
    return jsonify(meta_json(channelmeta.read(_channel(channel_id, write=False).id)))


@api_bp.patch("/channels/<int:channel_id>/metadata")
def patch_metadata(channel_id: int) -> Response:
    """Change the text, the tags, or some pairs (a null value removes its key)."""
    channel = _channel(channel_id, write=True)
    body = parse_body(MetadataPatch)
    pairs = body.pairs or {}
    meta = channelmeta.update(
        channel,
        metadata=body.metadata,
        tags=body.tags,
        set_pairs={k: v for k, v in pairs.items() if v is not None},
        unset=[k for k, v in pairs.items() if v is None],
    )
    return jsonify(meta_json(meta))
