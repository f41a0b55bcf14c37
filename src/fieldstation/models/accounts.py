"""Users and API keys (only a hash of each key is stored)."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from fieldstation.models.base import Base, UTCDateTime, utcnow


class KeyKind(enum.StrEnum):
    """What a key may do: write to a channel, read a channel, or manage a user's channels."""

    WRITE = "write"
    READ = "read"
    USER = "user"


class User(Base):
    """An account that owns channels."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Every session cookie of the account is bound to it; signing out moves it on (dashboard.session).
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    #: A password someone else knows (generated, or set by an admin): changed at the next sign-in.
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    #: A disabled account cannot sign in and its user key is refused; its channels keep working.
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    channels = relationship("Channel", back_populates="owner", cascade="all, delete-orphan")


class ApiKey(Base):
    """A write/read key of one channel, or a user's management key.

    ``key_hash`` is the SHA-256 of the key; keys are random (80+ bits), so a
    fast hash is enough and lets the hot ingest path look a key up by index.
    A write key may be bound to one device id, so that one station's key can
    be revoked without touching the others.
    """

    __tablename__ = "api_keys"
    __table_args__ = (
        # Serves the key lookup on every authenticated request.
        Index("ix_api_keys_key_hash", "key_hash", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    key_hash: Mapped[str] = mapped_column(String(64))
    prefix: Mapped[str] = mapped_column(String(8))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[str | None] = mapped_column(String(64))
    label: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
