"""Deciding when a rule fires or resolves, and recording it with its notifications.

Thresholds are judged on the readings' own times: "above 30 for 2 minutes"
fires on the reading that makes two minutes of readings above 30 (every
reading from one at or before two minutes earlier up to it), and resolves on
the first reading back past the hysteresis (at or below 30 minus it). The
worker looks at a rule again whenever its channel's ``last_write_us`` moved,
which every committed write sets: the write path does nothing more for alerts.

Silences are judged against the clock: the channel's last write (or the
device's last arrival, from ``device_activity``) older than ``silence_s``.

A change of state is a compare-and-set on the rule's state, in the same
transaction as the transition and its deliveries: of two workers that decide
the same change, one records it, and each change notifies once.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from typing import Any

from sqlalchemy import func, or_, select, text, update

from fieldstation.extensions import db
from fieldstation.models import AlertDelivery, AlertRule, AlertTransition, Channel, DeviceActivity, Field
from fieldstation.timeunits import US

_LATEST = text("SELECT ts, value FROM readings WHERE field_id = :field ORDER BY ts DESC LIMIT 1")
#: A reading in [start, end] that breaks the condition (a text reading breaks it too).
_BROKEN = {
    "above": text(
        "SELECT 1 FROM readings WHERE field_id = :field AND ts >= :start AND ts <= :end "
        "AND (value IS NULL OR value <= :threshold) LIMIT 1"
    ),
    "below": text(
        "SELECT 1 FROM readings WHERE field_id = :field AND ts >= :start AND ts <= :end "
        "AND (value IS NULL OR value >= :threshold) LIMIT 1"
    ),
}
_AT_OR_BEFORE = text(
    "SELECT value FROM readings WHERE field_id = :field AND ts <= :start ORDER BY ts DESC LIMIT 1"
)


def holds(rule: AlertRule, value: float | None) -> bool:
    """The threshold's condition on one value."""
    if value is None or rule.threshold is None:
        return False
    return value > rule.threshold if rule.op == "above" else value < rule.threshold


def cleared(rule: AlertRule, value: float | None) -> bool:
    """The value is back past the threshold by the hysteresis."""
    if value is None or rule.threshold is None:
        return False
    if rule.op == "above":
        return value <= rule.threshold - rule.hysteresis
    return value >= rule.threshold + rule.hysteresis


def evaluate_thresholds(now: int) -> int:
    """Look again at every enabled threshold rule whose channel was written since; returns the transitions."""
    session = db.session
    rows = session.execute(
        select(AlertRule.id, Channel.last_write_us)
        .join(Channel, Channel.id == AlertRule.channel_id)
        .where(
            AlertRule.kind == "threshold",
            AlertRule.enabled.is_(True),
            Channel.last_write_us.is_not(None),
            or_(AlertRule.checked_write_us.is_(None), AlertRule.checked_write_us != Channel.last_write_us),
        )
    ).all()
    session.rollback()
    changes = 0
    for rule_id, last_write in rows:
        rule = session.get(AlertRule, rule_id)
        if rule is None:
            continue
        changes += evaluate_threshold(rule, now)
        session.execute(update(AlertRule).where(AlertRule.id == rule_id).values(checked_write_us=last_write))
        session.commit()
    return changes


def evaluate_threshold(rule: AlertRule, now: int) -> int:
    """Fire or resolve one threshold rule from its field's latest readings; 1 when its state changed."""
    session = db.session
    latest = session.execute(_LATEST, {"field": rule.field_id}).first()
    if latest is None:
        return 0
    ts, value = int(latest[0]), latest[1]
    if rule.state == "ok" and holds(rule, value):
        if rule.for_s:
            start = ts - rule.for_s * US
            params = {"field": rule.field_id, "start": start, "end": ts, "threshold": rule.threshold}
            if session.execute(_BROKEN[rule.op or "above"], params).first() is not None:
                return 0
            before = session.execute(_AT_OR_BEFORE, {"field": rule.field_id, "start": start}).first()
            if before is None or not holds(rule, before[0]):
                return 0  # the readings do not reach back far enough yet
        return transition(rule, "firing", now, value, _threshold_message(rule, value, firing=True))
    if rule.state == "firing" and cleared(rule, value):
        return transition(rule, "ok", now, value, _threshold_message(rule, value, firing=False))
    return 0


def _threshold_message(rule: AlertRule, value: float, *, firing: bool) -> str:
    field = db.session.get(Field, rule.field_id)
    name = field.name if field else "the field"
    if firing:
        lasting = f" for {_duration(rule.for_s)}" if rule.for_s else ""
        return f"{name} is {value:g}: {rule.op} {rule.threshold:g}{lasting}"
    return f"{name} is {value:g}: back from {rule.op} {rule.threshold:g}"


def evaluate_silences(now: int) -> int:
    """Fire or resolve every enabled silence rule against ``now``; returns the transitions."""
    session = db.session
    rules = session.scalars(
        select(AlertRule).where(AlertRule.kind == "silence", AlertRule.enabled.is_(True))
    ).all()
    changes = 0
    for rule in rules:
        if rule.device:
            last = session.scalar(
                select(func.max(DeviceActivity.last_us)).where(
                    DeviceActivity.channel_id == rule.channel_id, DeviceActivity.device == rule.device
                )
            )
        else:
            last = session.scalar(select(Channel.last_write_us).where(Channel.id == rule.channel_id))
        since = max(int(last), rule.created_us) if last is not None else rule.created_us
        quiet = now - since
        limit = (rule.silence_s or 0) * US
        what = f"device {rule.device}" if rule.device else "the channel"
        if rule.state == "ok" and quiet > limit:
            message = f"no data from {what} for {_duration(quiet // US)}"
            changes += transition(rule, "firing", now, None, message)
        elif rule.state == "firing" and quiet <= limit:
            changes += transition(rule, "ok", now, None, f"data from {what} again")
    session.rollback()
    return changes


def _duration(seconds: int) -> str:
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{seconds // 60} min"
    return f"{seconds} s"


def targets(rule: AlertRule) -> list[tuple[str, str]]:
    """(way, target) of each notification the rule sends."""
    found = []
    if rule.webhook_url:
        found.append(("webhook", rule.webhook_url))
    if rule.email_to:
        found.append(("email", rule.email_to))
    if rule.mqtt_topic:
        found.append(("mqtt", rule.mqtt_topic))
    return found


def transition(rule: AlertRule, state: str, now: int, value: float | None, message: str) -> int:
    """Record ``rule`` entering ``state`` ("firing", "ok"; "test" changes nothing) with its notifications.

    One transaction: the compare-and-set of the state, the transition, one outbox
    row per way of notifying. Returns 1, or 0 when another worker changed the state first.
    """
    session = db.session
    if state != "test":
        with session.no_autoflush:  # compare with the state this worker read, not one it holds unsaved
            changed = session.execute(
                update(AlertRule)
                .where(AlertRule.id == rule.id, AlertRule.state == rule.state)
                .values(state=state, state_since_us=now)
                .execution_options(synchronize_session=False)
            )
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return 0
    record = AlertTransition(rule_id=rule.id, at_us=now, state=state, value=value, message=message)
    session.add(record)
    session.flush()
    channel = session.get(Channel, rule.channel_id)
    for via, target in targets(rule):
        delivery_id = str(uuid.uuid4())
        body = payload(rule, channel, record, delivery_id)
        session.add(
            AlertDelivery(
                id=delivery_id,
                transition_id=record.id,
                via=via,
                target=target,
                payload=json.dumps(body, sort_keys=True),
                attempts=0,
                next_attempt_us=now,
                failed=False,
            )
        )
    session.commit()
    session.expire(rule)
    return 1


def test_rule(rule: AlertRule, now: int) -> int:
    """Send a test notification by every way the rule has (its state stays)."""
    return transition(rule, "test", now, None, f"test of alert rule {rule.name!r}")


def payload(
    rule: AlertRule, channel: Channel | None, record: AlertTransition, delivery_id: str
) -> dict[str, Any]:
    """The notification's JSON body (docs/operations.md, "Notifications")."""
    field = db.session.get(Field, rule.field_id) if rule.field_id else None
    event = {"firing": "firing", "ok": "resolved", "test": "test"}[record.state]
    return {
        "delivery_id": delivery_id,
        "event": event,
        "at": dt.datetime.fromtimestamp(record.at_us / US, dt.UTC).isoformat().replace("+00:00", "Z"),
        "message": record.message,
        "value": record.value,
        "channel": {"id": rule.channel_id, "name": channel.name if channel else None},
        "rule": {
            "id": rule.id,
            "name": rule.name,
            "kind": rule.kind,
            "field": field.name if field else None,
            "op": rule.op,
            "threshold": rule.threshold,
            "for_s": rule.for_s,
            "hysteresis": rule.hysteresis,
            "silence_s": rule.silence_s,
            "device": rule.device,
        },
    }
