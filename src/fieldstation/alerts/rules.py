"""Alert rules: the checks every way of making or changing one goes through."""

from __future__ import annotations

import math
import re
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from fieldstation.errors import BadRequest, NotFound
from fieldstation.extensions import db
from fieldstation.models import AlertDelivery, AlertRule, AlertTransition, Channel, Field
from fieldstation.points import normalize_device
from fieldstation.timeunits import DAY, SECOND

KINDS = ("threshold", "silence")
OPS = ("above", "below")
#: Longest "for N" of a threshold, and longest silence (seconds).
MAX_FOR_S = 7 * DAY // SECOND
MAX_SILENCE_S = 366 * DAY // SECOND
MIN_SILENCE_S = 10
#: Thresholds beyond this are refused (no sensor reads that; it guards the arithmetic).
MAX_ABS_VALUE = 1e15
#: One plain ASCII address (what SMTP takes without extensions); no display names or lists.
_EMAIL = re.compile(r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9.-]{1,253}$")
#: Rules a channel may have.
MAX_RULES = 100


def check_webhook_url(url: str) -> str:
    """An http(s) URL with a host; anything else (file:, ftp:, javascript:, no host) is refused."""
    if len(url) > 2000 or any(ord(c) < 33 for c in url):
        raise BadRequest(
            "webhook_url: at most 2000 characters, no spaces or control characters", code="bad_url"
        )
    try:
        parts = urlsplit(url)
    except ValueError:  # "http://[::1" and the like
        raise BadRequest("webhook_url is not a URL", code="bad_url") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise BadRequest("webhook_url must be an http:// or https:// URL with a host", code="bad_url")
    try:
        parts.port  # noqa: B018  (raises for a port out of range)
    except ValueError:
        raise BadRequest("webhook_url has a bad port", code="bad_url") from None
    return url


def _check_topic(topic: str) -> str:
    if not 1 <= len(topic) <= 255 or any(c in topic for c in "+#\x00") or topic.startswith("$"):
        raise BadRequest(
            "mqtt_topic: 1-255 characters, no wildcards (+ #), not starting with $", code="bad_topic"
        )
    return topic


def _check_email(address: str) -> str:
    if len(address) > 320 or not _EMAIL.match(address):
        raise BadRequest("email_to must be one e-mail address", code="bad_email")
    return address


def _finite(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise BadRequest(f"{name} must be a number", code="bad_rule")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number) or abs(number) > MAX_ABS_VALUE:
        raise BadRequest(f"{name} must be a finite number within ±{MAX_ABS_VALUE:g}", code="bad_rule")
    return number


def _seconds(name: str, value: Any, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadRequest(f"{name} must be whole seconds from {low} to {high}", code="bad_rule")
    return value


def _field_of(channel: Channel, ref: Any) -> Field:
    """A channel's field by number or name."""
    field: Field
    for field in channel.fields:
        if (isinstance(ref, int) and not isinstance(ref, bool) and field.number == ref) or field.name == ref:
            return field
    raise BadRequest(f"channel has no field {str(ref)[:60]!r}", code="unknown_field")


#: What a rule can be given (the API's body, the CLI's options, the dashboard's form).
SETTINGS = (
    "name",
    "kind",
    "field",
    "op",
    "threshold",
    "for_s",
    "hysteresis",
    "silence_s",
    "device",
    "webhook_url",
    "email_to",
    "mqtt_topic",
    "enabled",
)


def _apply(rule: AlertRule, channel: Channel, changes: dict[str, Any]) -> None:
    """Check and set ``changes``; then check the rule as a whole."""
    unknown = set(changes) - set(SETTINGS)
    if unknown:
        raise BadRequest(f"unknown setting {sorted(unknown)[0][:40]!r}", code="bad_rule")
    for name, value in changes.items():
        if name == "name":
            if not isinstance(value, str) or not 1 <= len(value.strip()) <= 200:
                raise BadRequest("name: 1-200 characters", code="bad_rule")
            rule.name = value.strip()
        elif name == "kind":
            if value not in KINDS:
                raise BadRequest(f"kind must be one of {', '.join(KINDS)}", code="bad_rule")
            rule.kind = value
        elif name == "field":
            rule.field_id = None if value is None else _field_of(channel, value).id
        elif name == "op":
            if value is not None and value not in OPS:
                raise BadRequest("op must be above or below", code="bad_rule")
            rule.op = value
        elif name == "threshold":
            rule.threshold = None if value is None else _finite("threshold", value)
        elif name == "for_s":
            rule.for_s = _seconds("for_s", value, 0, MAX_FOR_S)
        elif name == "hysteresis":
            rule.hysteresis = _finite("hysteresis", value)
            if rule.hysteresis < 0:
                raise BadRequest("hysteresis must not be negative", code="bad_rule")
        elif name == "silence_s":
            rule.silence_s = (
                None if value is None else _seconds("silence_s", value, MIN_SILENCE_S, MAX_SILENCE_S)
            )
        elif name == "device":
            rule.device = None if value in (None, "") else normalize_device(str(value))
        elif name == "webhook_url":
            rule.webhook_url = None if value in (None, "") else check_webhook_url(str(value))
        elif name == "email_to":
            rule.email_to = None if value in (None, "") else _check_email(str(value))
        elif name == "mqtt_topic":
            rule.mqtt_topic = None if value in (None, "") else _check_topic(str(value))
        elif name == "enabled":
            if not isinstance(value, bool):
                raise BadRequest("enabled must be true or false", code="bad_rule")
            rule.enabled = value
    if rule.kind == "threshold":
        if rule.field_id is None or rule.op is None or rule.threshold is None:
            raise BadRequest("a threshold rule needs field, op (above/below) and threshold", code="bad_rule")
        rule.silence_s = None
        rule.device = None
    else:
        if rule.silence_s is None:
            raise BadRequest("a silence rule needs silence_s", code="bad_rule")
        rule.field_id = rule.op = rule.threshold = None


def create_rule(channel: Channel, now: int, **settings: Any) -> AlertRule:
    """A new rule of ``channel`` (state ok from ``now``).

    :raise BadRequest: a setting out of range, an unknown field, a hostile URL, too many rules.
    """
    count = db.session.scalar(select(func.count()).where(AlertRule.channel_id == channel.id)) or 0
    if count >= MAX_RULES:
        raise BadRequest(f"a channel has at most {MAX_RULES} alert rules", code="too_many_rules")
    rule = AlertRule(
        channel_id=channel.id,
        name="",
        kind="",
        for_s=0,
        hysteresis=0.0,
        enabled=True,
        state="ok",
        state_since_us=now,
        created_us=now,
        webhook_secret=secrets.token_hex(32),
    )
    settings.setdefault("name", "")
    settings.setdefault("kind", "")
    try:
        _apply(rule, channel, settings)
    except BaseException:
        db.session.rollback()
        raise
    db.session.add(rule)
    db.session.commit()
    return rule


def update_rule(rule: AlertRule, channel: Channel, **changes: Any) -> AlertRule:
    """Change a rule's settings (its state stays; a threshold is looked at again with the next data)."""
    try:
        _apply(rule, channel, changes)
    except BaseException:
        db.session.rollback()
        raise
    rule.checked_write_us = None
    db.session.commit()
    return rule


def delete_rule(rule: AlertRule) -> None:
    db.session.delete(rule)
    db.session.commit()


def rules_of(channel_id: int) -> list[AlertRule]:
    return list(
        db.session.scalars(select(AlertRule).where(AlertRule.channel_id == channel_id).order_by(AlertRule.id))
    )


def rule_of(channel_id: int, rule_id: int) -> AlertRule:
    """:raise NotFound: no such rule on this channel."""
    rule = db.session.get(AlertRule, rule_id)
    if rule is None or rule.channel_id != channel_id:
        raise NotFound("alert rule not found")
    return rule


def field_name(rule: AlertRule) -> str | None:
    if rule.field_id is None:
        return None
    field = db.session.get(Field, rule.field_id)
    return field.name if field else None


@dataclass(frozen=True, slots=True)
class Transition:
    """A rule's transition and what became of its notifications."""

    at_us: int
    state: str
    value: float | None
    message: str
    deliveries: list[AlertDelivery]


def history(rule_id: int, limit: int = 50) -> list[Transition]:
    """The rule's latest transitions, newest first, each with its deliveries."""
    transitions = db.session.scalars(
        select(AlertTransition)
        .where(AlertTransition.rule_id == rule_id)
        .order_by(AlertTransition.at_us.desc(), AlertTransition.id.desc())
        .limit(limit)
    ).all()
    ids = [t.id for t in transitions]
    deliveries: dict[int, list[AlertDelivery]] = {}
    if ids:
        for delivery in db.session.scalars(select(AlertDelivery).where(AlertDelivery.transition_id.in_(ids))):
            deliveries.setdefault(delivery.transition_id, []).append(delivery)
    return [Transition(t.at_us, t.state, t.value, t.message, deliveries.get(t.id, [])) for t in transitions]


def firing_by_channel(channel_ids: list[int]) -> dict[int, list[AlertRule]]:
    """Firing rules of these channels."""
    if not channel_ids:
        return {}
    found: dict[int, list[AlertRule]] = {}
    query = select(AlertRule).where(AlertRule.channel_id.in_(channel_ids), AlertRule.state == "firing")
    for rule in db.session.scalars(query):
        found.setdefault(rule.channel_id, []).append(rule)
    return found
