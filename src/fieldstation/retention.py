"""Purging of old readings: per-channel retention (``retention_days``) or an explicit cut-off.

Rollups of purged time are dropped with the readings (the boundary hour is
rebuilt on the next read). Deletes run in chunks of one field at a time, each its own short transaction,
so a purge of millions of rows never holds SQLite's write lock for long and
ingest keeps flowing between chunks.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select

from fieldstation import rollups
from fieldstation.extensions import db
from fieldstation.models import Channel, EntryRecord, Field, ReadingRecord
from fieldstation.timeunits import DAY, now_us


@dataclass(frozen=True, slots=True)
class PurgeResult:
    """How much one purge removed."""

    channels: int
    readings: int
    entries: int


def purge(
    *, older_than_days: int | None = None, channel_id: int | None = None, now: int | None = None
) -> PurgeResult:
    """Delete readings and entries older than each channel's retention, or than ``older_than_days``.

    Channels without a retention setting are only touched when
    ``older_than_days`` is given.
    """
    now = now_us() if now is None else now
    query = select(Channel.id, Channel.retention_days)
    if channel_id is not None:
        query = query.where(Channel.id == channel_id)
    readings = entries = channels = 0
    for cid, retention in db.session.execute(query).all():
        days = older_than_days if older_than_days is not None else retention
        if days is None:
            continue
        cutoff = now - days * DAY
        channels += 1
        field_ids = db.session.scalars(select(Field.id).where(Field.channel_id == cid)).all()
        for field_id in field_ids:
            result = db.session.execute(
                delete(ReadingRecord).where(ReadingRecord.field_id == field_id, ReadingRecord.ts < cutoff)
            )
            readings += result.rowcount  # type: ignore[attr-defined]
            rollups.forget_before(db.session, field_id, cutoff)
            db.session.commit()
        result = db.session.execute(
            delete(EntryRecord).where(EntryRecord.channel_id == cid, EntryRecord.ts < cutoff)
        )
        entries += result.rowcount  # type: ignore[attr-defined]
        db.session.commit()
    return PurgeResult(channels, readings, entries)
