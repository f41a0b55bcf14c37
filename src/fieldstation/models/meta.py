"""What a channel carries besides its readings: ThingSpeak's metadata text and tags, and key-value pairs."""

from __future__ import annotations

from sqlalchemy import ForeignKey, Text
from sqlalchemy.orm import Mapped, mapped_column

from fieldstation.models.base import Base


class ChannelMeta(Base):
    """One row per channel that has any: kept apart so the channel row (locked on every write) stays small.

    ``tags`` and ``pairs`` are JSON text: a list of tag names, and an object of
    string keys to JSON values (a station's firmware version, a calibration date).
    """

    __tablename__ = "channel_meta"

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True)
    metadata_text: Mapped[str] = mapped_column("metadata", Text, default="", server_default="")
    tags: Mapped[str] = mapped_column(Text, default="[]", server_default="[]")
    pairs: Mapped[str] = mapped_column(Text, default="{}", server_default="{}")
