"""Devices seen (kept apart from the write allow-list) and what is expected of them.

``device_activity`` is written by every write that names a device, one upsert
per batch (:mod:`fieldstation.devices`): a row per channel, device and hour of
arrival holds how many writes and entries arrived in that hour and when the
first and last of them did. The hour rows give the median interval between
writes over the last day without a row per write; the maintenance worker folds
rows older than two days into the device's hour 0 row, which keeps the totals.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, ForeignKey, Integer, PrimaryKeyConstraint, String
from sqlalchemy.orm import Mapped, mapped_column

from fieldstation.models.base import Base


class DeviceActivity(Base):
    """Writes of one device to one channel that arrived in one hour (server time)."""

    __tablename__ = "device_activity"
    __table_args__ = (PrimaryKeyConstraint("channel_id", "device", "hour"),)

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    #: The device the write counted as (a key's bound device, else the one the request named).
    device: Mapped[str] = mapped_column(String(64))
    #: Start of the hour of arrival, µs since the epoch; 0 for the folded history.
    hour: Mapped[int] = mapped_column(BigInteger)
    #: Writes (batches) that arrived.
    writes: Mapped[int] = mapped_column(BigInteger)
    #: Entries those writes carried.
    entries: Mapped[int] = mapped_column(BigInteger)
    #: Arrival of the first and the last of them, µs since the epoch.
    first_us: Mapped[int] = mapped_column(BigInteger)
    last_us: Mapped[int] = mapped_column(BigInteger)


class DeviceExpectation(Base):
    """How often a device (or, with ``device`` empty, every device of the channel) is expected to write."""

    __tablename__ = "device_expectations"
    __table_args__ = (PrimaryKeyConstraint("channel_id", "device"),)

    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    #: The device id, or "" for the channel's default.
    device: Mapped[str] = mapped_column(String(64))
    #: Longest expected gap between two writes; a device quiet for longer is silent.
    interval_s: Mapped[int] = mapped_column(Integer)
