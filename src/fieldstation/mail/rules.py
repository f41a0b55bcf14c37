"""Rules that turn an e-mail into an entry. Pure: no IMAP, no database.

A rule is a regular expression with named groups, matched against the subject (or the body):

- ``sensor``: the sensor's name, stored as the entry's status (motion sensors);
- ``channel``: picks the channel through the rule's ``channels`` map (a mail never names a
  channel id directly: anyone can send mail);
- ``value``: the reading; without it the rule's constant ``value`` (1, an event) is stored;
- ``time``: when it happened, read with ``time_format`` (``strptime``) in ``timezone``, or as
  ISO 8601 without a format; without it the mail's ``Date`` header (else the server's
  arrival time) is used.

Timestamps must make a re-read mail land on the same entry (the store upserts on (field, ts))
while two different mails never share one, even when IFTTT's minute-resolution time is the
same for two sensors. So the time from the mail is kept to the second and the microseconds
below it are derived from the message (a hash of Message-ID and subject): the same mail gives
the same timestamp every time, two mails differ but for a one-in-a-million coincidence.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fieldstation.errors import BadRequest
from fieldstation.points import (
    Batch,
    Entry,
    check_ts,
    clean_status,
    get_zone,
    parse_time,
    parse_value,
)
from fieldstation.timeunits import US, datetime_to_us


class RuleConfig(BaseModel):
    """One entry of the MAIL_RULES setting, validated at start-up."""

    model_config = ConfigDict(extra="forbid")

    name: str
    pattern: str
    match: Literal["subject", "body"] = "subject"
    #: Channel id, or a map from the ``channel`` group's text to channel ids.
    channel: int | None = Field(default=None, gt=0)
    channels: dict[str, int] = {}
    #: Field number, or per-sensor field numbers (``sensor`` group's text -> number).
    field: int = Field(default=1, gt=0)
    fields: dict[str, int] = {}
    value: float = 1.0
    time_format: str | None = None
    timezone: str | None = None
    #: Only mail whose From address matches this regular expression (e.g. ``@ifttt\\.com$``).
    sender: str | None = None

    @field_validator("pattern", "sender")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a regular expression: {exc}") from None
        return value


@dataclass(frozen=True, slots=True)
class Rule:
    """A compiled rule."""

    config: RuleConfig
    pattern: re.Pattern[str]
    sender: re.Pattern[str] | None
    zone: dt.tzinfo


def load_rules(raw: Sequence[Mapping[str, Any]]) -> list[Rule]:
    """Validate and compile the MAIL_RULES setting.

    :raise BadRequest: a rule that does not have the documented shape.
    """
    rules = []
    for index, item in enumerate(raw):
        try:
            config = RuleConfig.model_validate(item)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise BadRequest(f"MAIL_RULES[{index}] {where}: {first['msg']}") from None
        if config.channel is None and not config.channels:
            raise BadRequest(f"MAIL_RULES[{index}]: give channel or channels")
        sender = re.compile(config.sender, re.IGNORECASE) if config.sender else None
        rules.append(Rule(config, re.compile(config.pattern), sender, get_zone(config.timezone)))
    return rules


@dataclass(frozen=True, slots=True)
class Mail:
    """What the rules look at in one message."""

    subject: str
    body: str
    sender: str
    message_id: str
    #: ``Date`` header in µs, or None when missing/unreadable.
    date: int | None
    #: When the server received it (IMAP INTERNALDATE), in µs.
    arrived: int


def to_batch(rules: Sequence[Rule], mail: Mail) -> tuple[Rule, Batch] | None:
    """The first rule that matches, and the one-entry batch it makes; None if none matches.

    :raise BadRequest: a rule matched but its groups do not make a valid entry.
    """
    for rule in rules:
        if rule.sender is not None and not rule.sender.search(mail.sender):
            continue
        text = mail.subject if rule.config.match == "subject" else mail.body
        found = rule.pattern.search(text)
        if found is not None:
            return rule, _batch(rule, mail, found.groupdict())
    return None


def _batch(rule: Rule, mail: Mail, groups: Mapping[str, str | None]) -> Batch:
    config = rule.config
    sensor = (groups.get("sensor") or "").strip() or None
    channel = config.channel
    if groups.get("channel") is not None and config.channels:
        channel = config.channels.get(str(groups["channel"]).strip())
    if channel is None:
        raise BadRequest(f"rule {config.name!r}: no channel for {groups.get('channel')!r}")
    number = config.fields.get(sensor, config.field) if sensor else config.field
    raw_value = groups.get("value")
    value = parse_value(raw_value) if raw_value is not None else config.value
    entry = Entry({number: value}, ts=_timestamp(rule, mail, groups.get("time")), status=clean_status(sensor))
    return Batch(channel, [entry])


def _timestamp(rule: Rule, mail: Mail, text: str | None) -> int:
    """Seconds from the mail, microseconds from the message's identity (see the module doc)."""
    if text is not None:
        base = _parse_time(rule, text.strip())
    else:
        base = mail.date if mail.date is not None else mail.arrived
    digest = hashlib.sha256(f"{mail.message_id}\x00{mail.subject}".encode("utf-8", "replace")).digest()
    return check_ts(base - base % US + int.from_bytes(digest[:8], "big") % US)


def _parse_time(rule: Rule, text: str) -> int:
    fmt = rule.config.time_format
    if fmt is None:
        return parse_time(text, rule.zone)
    try:
        parsed = dt.datetime.strptime(text, fmt)  # noqa: DTZ007 - zone applied on the next line
    except ValueError:
        raise BadRequest(f"rule {rule.config.name!r}: time {text[:40]!r} does not match {fmt!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=rule.zone)
    return datetime_to_us(parsed)


def header_time(value: str | None) -> int | None:
    """An RFC 5322 ``Date`` header in µs; None when missing or unreadable."""
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return datetime_to_us(parsed)
