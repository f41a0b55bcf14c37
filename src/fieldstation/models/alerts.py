"""Alert rules, their transitions, the outbox of notifications, and the worker's job schedule (issue 19)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from fieldstation.models.base import Base


class AlertRule(Base):
    """A threshold on a field, or a silence of the channel or of one device, and where to tell."""

    __tablename__ = "alert_rules"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    #: "threshold" or "silence".
    kind: Mapped[str] = mapped_column(String(16))
    #: threshold: the field, "above" or "below", the value, how long it must hold, the hysteresis.
    field_id: Mapped[int | None] = mapped_column(ForeignKey("fields.id", ondelete="CASCADE"))
    op: Mapped[str | None] = mapped_column(String(8))
    threshold: Mapped[float | None] = mapped_column(Float)
    for_s: Mapped[int] = mapped_column(Integer, default=0)
    hysteresis: Mapped[float] = mapped_column(Float, default=0.0)
    #: silence: seconds without a write; of one device when ``device`` is set, else of the channel.
    silence_s: Mapped[int | None] = mapped_column(Integer)
    device: Mapped[str | None] = mapped_column(String(64))
    #: Where notifications go (any of them, or none).
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_secret: Mapped[str] = mapped_column(String(64))
    email_to: Mapped[str | None] = mapped_column(String(320))
    mqtt_topic: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    #: "ok" or "firing", since when (µs).
    state: Mapped[str] = mapped_column(String(8), default="ok")
    state_since_us: Mapped[int] = mapped_column(BigInteger)
    #: The channel's ``last_write_us`` when a threshold was last evaluated (a change means new data).
    checked_write_us: Mapped[int | None] = mapped_column(BigInteger)
    created_us: Mapped[int] = mapped_column(BigInteger)


class AlertTransition(Base):
    """A rule's change of state (or a test), with the value that made it."""

    __tablename__ = "alert_transitions"
    __table_args__ = (Index("ix_alert_transitions_rule_at", "rule_id", "at_us"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    rule_id: Mapped[int] = mapped_column(ForeignKey("alert_rules.id", ondelete="CASCADE"))
    at_us: Mapped[int] = mapped_column(BigInteger)
    #: "firing", "ok" or "test".
    state: Mapped[str] = mapped_column(String(8))
    value: Mapped[float | None] = mapped_column(Float)
    message: Mapped[str] = mapped_column(Text)


class AlertDelivery(Base):
    """One notification of one transition by one way: the outbox, delivered at least once.

    Made in the transaction that records the transition; the delivery id travels
    with every attempt, so a receiver can drop a repeat after a crash.
    """

    __tablename__ = "alert_deliveries"
    __table_args__ = (Index("ix_alert_deliveries_due", "delivered_us", "next_attempt_us"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    transition_id: Mapped[int] = mapped_column(
        ForeignKey("alert_transitions.id", ondelete="CASCADE"), index=True
    )
    #: "webhook", "email" or "mqtt".
    via: Mapped[str] = mapped_column(String(8))
    target: Mapped[str] = mapped_column(String(2000))
    #: The JSON body every attempt sends.
    payload: Mapped[str] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_us: Mapped[int] = mapped_column(BigInteger)
    #: A worker holds it until then (a crashed worker's claim runs out).
    claimed_until_us: Mapped[int | None] = mapped_column(BigInteger)
    delivered_us: Mapped[int | None] = mapped_column(BigInteger)
    #: Gave up after the last attempt.
    failed: Mapped[bool] = mapped_column(Boolean, default=False)
    last_error: Mapped[str | None] = mapped_column(Text)


class WorkerJob(Base):
    """When a scheduled job of ``fieldstation worker`` runs next; claimed by one worker at a time."""

    __tablename__ = "worker_jobs"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    next_run_us: Mapped[int] = mapped_column(BigInteger)
