"""Entries (one timestamp of a channel, with its metadata) and narrow readings.

Timestamps are integers: microseconds since the Unix epoch, UTC. Integers
compare, index and bucket (``ts / width``) the same way on SQLite and
PostgreSQL, and take 8 bytes.

On PostgreSQL neither table has a foreign key (migration 0003). A foreign key
checks its parent row for every row inserted: 5,000 checks per 5,000-point
batch, more than half of the batch's time in the database (95 ms with them,
41 ms without). Instead, triggers on ``fields`` and ``channels`` delete the
readings and entries of what is deleted (as ``ON DELETE CASCADE`` would), and
every write locks its channel row and then its field rows (``FOR KEY SHARE``,
once per field instead of once per reading) before it inserts, so a field or
channel deleted meanwhile either waits for the write and takes its rows with
it, or is gone before the write looks and the write is refused
(``store._statements``, "reserve_fields"). SQLite keeps its foreign keys: its
check is a cheap lookup, and dropping one would rebuild the table.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
)
from sqlalchemy.orm import Mapped, mapped_column

from fieldstation.models.base import Base


class EntryRecord(Base):
    """One timestamp of a channel: ThingSpeak's entry id, status and location."""

    __tablename__ = "entries"
    __table_args__ = (
        # Primary key serves "latest entry of a channel" (ORDER BY ts DESC LIMIT 1)
        # and feeds over a time range.
        PrimaryKeyConstraint("channel_id", "ts"),
        # Serves lookups by ThingSpeak entry id.
        Index("ix_entries_channel_entry", "channel_id", "entry_id", unique=True),
        # On SQLite only; PostgreSQL cascades by trigger instead (this module's docstring).
        ForeignKeyConstraint(["channel_id"], ["channels.id"], ondelete="CASCADE").ddl_if(dialect="sqlite"),
        {"sqlite_with_rowid": False},
    )

    channel_id: Mapped[int] = mapped_column()
    ts: Mapped[int] = mapped_column(BigInteger)
    entry_id: Mapped[int] = mapped_column(Integer)
    status: Mapped[str | None] = mapped_column(String(255))
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    elevation: Mapped[float | None] = mapped_column(Float)


class ReadingRecord(Base):
    """One value of one field at one timestamp.

    Clustered on (field_id, ts) — ``WITHOUT ROWID`` on SQLite, a covering
    primary key ``INCLUDE (value)`` on PostgreSQL — so that one field over a
    time range is one contiguous index scan (docs/architecture.md, "Storage").
    Non-numeric values (ThingSpeak allows them) live in ``text`` with
    ``value`` NULL; charts and aggregates skip them.
    """

    __tablename__ = "readings"
    __table_args__ = (
        PrimaryKeyConstraint("field_id", "ts", postgresql_include=["value"]),
        ForeignKeyConstraint(["field_id"], ["fields.id"], ondelete="CASCADE").ddl_if(dialect="sqlite"),
        {"sqlite_with_rowid": False},
    )

    field_id: Mapped[int] = mapped_column()
    ts: Mapped[int] = mapped_column(BigInteger)
    value: Mapped[float | None] = mapped_column(Float)
    text: Mapped[str | None] = mapped_column(String(255))
