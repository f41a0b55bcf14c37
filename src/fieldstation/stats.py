"""Counts about a channel that a person reads (``fieldstation channel show``)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from fieldstation.extensions import db
from fieldstation.models import EntryRecord, Field, ReadingRecord


@dataclass(frozen=True)
class ChannelCounts:
    """What a channel holds now: its entries (timestamps) and readings (values)."""

    entries: int
    readings: int


def channel_counts(channel_id: int) -> ChannelCounts:
    """Count the channel's rows; the last entry id is not a count (it stays after a purge)."""
    entries = db.session.scalar(
        select(func.count()).select_from(EntryRecord).where(EntryRecord.channel_id == channel_id)
    )
    readings = db.session.scalar(
        select(func.count())
        .select_from(ReadingRecord)
        .join(Field, Field.id == ReadingRecord.field_id)
        .where(Field.channel_id == channel_id)
    )
    return ChannelCounts(entries=int(entries or 0), readings=int(readings or 0))
