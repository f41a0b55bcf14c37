"""Pre-aggregated buckets of each field (per minute, hour and day) and the marks that keep them true.

A rollup row holds the count, sum, min, max, first and last of the numeric
readings of one field in one epoch-aligned slot starting at ``ts``. Rows are
derived data: :mod:`fieldstation.rollups` rebuilds any slot from the
readings, so they can be dropped and recomputed at any time.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Float, ForeignKey, Integer, LargeBinary, PrimaryKeyConstraint
from sqlalchemy.orm import Mapped, mapped_column

from fieldstation.models.base import Base


class _RollupColumns:
    field_id: Mapped[int] = mapped_column(ForeignKey("fields.id", ondelete="CASCADE"))
    ts: Mapped[int] = mapped_column(BigInteger)
    n: Mapped[int] = mapped_column(Integer)
    sum: Mapped[float] = mapped_column(Float)
    #: min, max, first and last are NULL in a slot of one reading: its sum is the reading.
    min: Mapped[float | None] = mapped_column(Float)
    max: Mapped[float | None] = mapped_column(Float)
    first: Mapped[float | None] = mapped_column(Float)
    last: Mapped[float | None] = mapped_column(Float)
    #: Time of the slot's first reading, and of its last (NULL in a slot of one reading).
    t0: Mapped[int | None] = mapped_column(BigInteger)
    t1: Mapped[int | None] = mapped_column(BigInteger)
    #: Within the slot: each reading held until the next (gaps up to the field's max_gap_s), in
    #: value x µs; and the increase (rises, a drop counting from zero). NULL: 0.
    area: Mapped[float | None] = mapped_column(Float)
    rise: Mapped[float | None] = mapped_column(Float)
    #: Within the slot: the area under the straight lines between successive readings (no gap
    #: rule), value x µs, as InfluxQL's integral() adds it up. NULL: 0.
    trap: Mapped[float | None] = mapped_column(Float)


class RollupMinute(_RollupColumns, Base):
    """One field's numeric readings per minute; clustered on (field_id, ts) for range scans."""

    __tablename__ = "rollup_minute"
    __table_args__ = (PrimaryKeyConstraint("field_id", "ts"), {"sqlite_with_rowid": False})


class RollupHour(_RollupColumns, Base):
    """One field's numeric readings per hour (built from the minute rollup)."""

    __tablename__ = "rollup_hour"
    __table_args__ = (PrimaryKeyConstraint("field_id", "ts"), {"sqlite_with_rowid": False})


class RollupDay(_RollupColumns, Base):
    """One field's numeric readings per UTC day (built from the hour rollup)."""

    __tablename__ = "rollup_day"
    __table_args__ = (PrimaryKeyConstraint("field_id", "ts"), {"sqlite_with_rowid": False})


class RollupDirty(Base):
    """An hour of a field whose rollups are stale: written by store.write, cleared by a refresh.

    ``gen`` grows with every write to the hour, so a refresh only clears the
    mark it read and a write that raced with it leaves the hour marked.
    """

    __tablename__ = "rollup_dirty"
    __table_args__ = (PrimaryKeyConstraint("field_id", "ts"), {"sqlite_with_rowid": False})

    field_id: Mapped[int] = mapped_column(ForeignKey("fields.id", ondelete="CASCADE"))
    ts: Mapped[int] = mapped_column(BigInteger)
    gen: Mapped[int] = mapped_column(Integer, default=1)


class ReadingBlock(Base):
    """One hour of one field's readings packed into one row, for long raw reads (:mod:`fieldstation.blocks`).

    Derived data, rebuilt with the rollups from the same marks. A rowid table on
    SQLite (its rows are a few kilobytes: clustering them would spill every row
    to overflow pages); ``data`` is stored uncompressed on PostgreSQL (migration 0005).
    """

    __tablename__ = "reading_blocks"
    __table_args__ = (PrimaryKeyConstraint("field_id", "ts"),)

    field_id: Mapped[int] = mapped_column(ForeignKey("fields.id", ondelete="CASCADE"))
    #: Start of the hour.
    ts: Mapped[int] = mapped_column(BigInteger)
    #: Readings in the hour.
    n: Mapped[int] = mapped_column(Integer)
    #: Time of the first reading.
    t0: Mapped[int] = mapped_column(BigInteger)
    #: Microseconds between readings when they are evenly spaced (no time array stored), else 0.
    step: Mapped[int] = mapped_column(BigInteger)
    #: Readings that are text (their value is NaN in ``data``; the text stays in ``readings``).
    texts: Mapped[int] = mapped_column(Integer)
    #: Little-endian int64 times (only when ``step`` is 0), then float64 values.
    data: Mapped[bytes] = mapped_column(LargeBinary)
