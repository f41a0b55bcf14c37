"""Channels, their named fields and device allow-lists."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldstation.models.base import Base, UTCDateTime, utcnow

#: What a field measures (docs/energy.md): averaged, integrated to energy, or counted up.
FIELD_KINDS = ("gauge", "power", "counter")
#: The longest max_gap_s a field may have (30 days).
MAX_GAP_S = 30 * 86_400


class Channel(Base):
    """A stream of entries with up to N named fields (ThingSpeak's channel)."""

    __tablename__ = "channels"
    #: AUTOINCREMENT: SQLite never gives a deleted channel's id to a new one (migration 0011).
    __table_args__ = (UniqueConstraint("owner_id", "name"), {"sqlite_autoincrement": True})

    id: Mapped[int] = mapped_column(primary_key=True)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(255))
    description: Mapped[str] = mapped_column(Text, default="")
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    latitude: Mapped[float | None] = mapped_column(Float)
    longitude: Mapped[float | None] = mapped_column(Float)
    elevation: Mapped[float | None] = mapped_column(Float)
    #: ThingSpeak's entry_id counter; bumped under the channel row lock by store.write.
    last_entry_id: Mapped[int] = mapped_column(Integer, default=0)
    #: Server time (µs since epoch) of the last accepted write, for the rate limit.
    last_write_us: Mapped[int | None] = mapped_column(BigInteger)
    #: Minimum seconds between writes (ThingSpeak's rate limit); 0 = off.
    min_interval_s: Mapped[int] = mapped_column(Integer, default=0)
    #: Readings older than this many days may be purged; NULL = keep forever.
    retention_days: Mapped[int | None] = mapped_column(Integer)
    #: MQTT topic prefix this channel trusts without a key (broker enforces ACLs).
    mqtt_topic_prefix: Mapped[str | None] = mapped_column(String(255))
    #: Some field has a calibration or an expression: store.write applies them (fieldstation.derive).
    derived: Mapped[bool] = mapped_column(Boolean, server_default=false())
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Last change of the channel's settings (not of its data: see last_write_us).
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    owner = relationship("User", back_populates="channels")
    fields = relationship(
        "Field",
        back_populates="channel",
        cascade="all, delete-orphan",
        order_by="Field.number",
        passive_deletes=True,
    )
    devices = relationship(
        "Device", back_populates="channel", cascade="all, delete-orphan", passive_deletes=True
    )


class Field(Base):
    """A named series of a channel (ThingSpeak's field1..8; not capped at 8 here)."""

    __tablename__ = "fields"
    __table_args__ = (
        UniqueConstraint("channel_id", "number"),
        # A line-protocol series name may be 64 KiB (migration 0008): PostgreSQL's btree entries
        # cannot hold that, so there the unique index is on the name's MD5.
        UniqueConstraint("channel_id", "name").ddl_if(dialect="sqlite"),
        Index("uq_fields_channel_id_name_md5", "channel_id", text("md5(name)"), unique=True).ddl_if(
            dialect="postgresql"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)
    #: At most 255 characters when made by hand; line protocol's series names reach 64 KiB.
    name: Mapped[str] = mapped_column(String(255).with_variant(Text(), "postgresql"))
    unit: Mapped[str | None] = mapped_column(String(32))
    #: gauge (averaged), power (integrated to energy) or counter (its increase); docs/energy.md.
    kind: Mapped[str] = mapped_column(String(16), server_default="gauge")
    #: A power reading held longer than this (until the next one) counts no energy.
    max_gap_s: Mapped[int] = mapped_column(Integer, server_default="3600")
    #: Calibration applied when a reading is stored: value * scale + offset (NULL: 1 and 0).
    cal_scale: Mapped[float | None] = mapped_column(Float)
    cal_offset: Mapped[float | None] = mapped_column(Float)
    #: A computed field: an expression over other fields of the same entry, by name.
    expression: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    channel = relationship("Channel", back_populates="fields")


class FieldCalibration(Base):
    """A calibration change of a field and when it took effect (readings stored after it use it)."""

    __tablename__ = "field_calibrations"
    __table_args__ = (Index("ix_field_calibrations_field", "field_id", "since_us"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    field_id: Mapped[int] = mapped_column(ForeignKey("fields.id", ondelete="CASCADE"))
    #: Server time (µs since the epoch) of the change.
    since_us: Mapped[int] = mapped_column(BigInteger)
    cal_scale: Mapped[float | None] = mapped_column(Float)
    cal_offset: Mapped[float | None] = mapped_column(Float)


class Device(Base):
    """A device id (usually a MAC address) allowed to write to a channel."""

    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("channel_id", "device_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"))
    #: Stored lower-case; compared case-insensitively.
    device_id: Mapped[str] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    channel = relationship("Channel", back_populates="devices")
