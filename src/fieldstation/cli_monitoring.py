"""``fieldstation devices``, ``alert``, ``channel set`` and ``worker`` (issue 19)."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import with_appcontext

from fieldstation import devices, manage
from fieldstation.alerts import evaluate, rules
from fieldstation.cligroup import friendly
from fieldstation.errors import FieldstationError
from fieldstation.mail.poller import parse_every
from fieldstation.models import AlertDelivery
from fieldstation.timeunits import now_us
from fieldstation.worker import worker_command


@click.group("devices")
def devices_group() -> None:
    """Devices seen on a channel (who wrote, when last, silent or not)."""


@devices_group.command("seen")
@click.argument("channel")
@with_appcontext
@friendly
def devices_seen(channel: str) -> None:
    """List the devices that wrote to CHANNEL (id or name), most recent first."""
    ch = manage.find_channel(channel)
    for d in devices.seen(ch.id, now_us()):
        last = dt.datetime.fromtimestamp(d.last_seen_us / 1e6, dt.UTC).isoformat(timespec="seconds")
        expected = "-" if d.expected_interval_s is None else f"{d.expected_interval_s:g}s ({d.expected_from})"
        state = "SILENT" if d.silent else "ok"
        click.echo(f"{d.device}\t{last}\t{d.writes} writes\texpected {expected}\t{state}")


@devices_group.command("expect")
@click.argument("channel")
@click.argument("seconds")
@click.option("--device", help="Only this device (default: every device of the channel without its own).")
@with_appcontext
@friendly
def devices_expect(channel: str, seconds: str, device: str | None) -> None:
    """Set the expected interval between writes to SECONDS ("none" removes it)."""
    ch = manage.find_channel(channel)
    if seconds.lower() == "none":
        value = None
    else:
        try:
            value = int(seconds)
        except ValueError:
            raise click.BadParameter("a whole number of seconds, or none", param_hint="SECONDS") from None
    devices.set_expected(ch.id, device, value)
    who = f"device {device}" if device else "the channel's devices"
    click.echo(f"expected interval of {who}: {'default' if value is None else f'{value} s'}")


def _seconds(text: str | None) -> int | None:
    """``90``, ``90s``, ``2m``, ``1h``, ``1d`` -> seconds."""
    if text is None:
        return None
    try:
        return int(text) if text.isdigit() else round(parse_every(text))
    except (ValueError, FieldstationError):
        raise click.BadParameter(f"{text!r}: a duration such as 90, 90s, 2m, 1h") from None


@click.group("alert")
def alert_group() -> None:
    """Alert rules of a channel: a threshold on a field, or silence of the channel or a device."""


@alert_group.command("create")
@click.argument("channel")
@click.option("--name", required=True)
@click.option("--field", help="threshold: the field (name or number).")
@click.option("--above", type=float, help="threshold: fire above this value.")
@click.option("--below", type=float, help="threshold: fire below this value.")
@click.option("--for", "for_", help="threshold: how long it must hold (90s, 2m, 1h).")
@click.option("--hysteresis", type=float, help="threshold: resolve only this far back past it.")
@click.option("--silence", help="silence: fire after this long without data (10m, 1h).")
@click.option("--device", help="silence: of this device, not the whole channel.")
@click.option("--webhook", help="Notify this http(s) URL.")
@click.option("--email", help="Notify this e-mail address.")
@click.option("--mqtt-topic", help="Publish to this MQTT topic (ALERT_MQTT_URL's broker).")
@with_appcontext
@friendly
def alert_create(channel: str, name: str, field: str | None, above: float | None, below: float | None,
                 for_: str | None, hysteresis: float | None, silence: str | None, device: str | None,
                 webhook: str | None, email: str | None, mqtt_topic: str | None) -> None:  # fmt: skip
    """Make an alert rule on CHANNEL (id or name); prints its id and webhook secret."""
    ch = manage.find_channel(channel)
    settings: dict[str, object] = {
        "name": name,
        "webhook_url": webhook,
        "email_to": email,
        "mqtt_topic": mqtt_topic,
    }
    if silence is not None:
        settings |= {"kind": "silence", "silence_s": _seconds(silence), "device": device}
    else:
        if (above is None) == (below is None):
            raise click.UsageError("give --above or --below (a threshold), or --silence")
        settings |= {"kind": "threshold", "field": int(field) if field and field.isdigit() else field}
        settings |= {
            "op": "above" if above is not None else "below",
            "threshold": above if above is not None else below,
        }
        settings |= {"for_s": _seconds(for_) or 0, "hysteresis": hysteresis or 0.0}
    rule = rules.create_rule(ch, now_us(), **settings)
    click.echo(f"alert rule {rule.id} on channel {ch.id}; webhook secret {rule.webhook_secret}")


@alert_group.command("list")
@click.argument("channel")
@with_appcontext
@friendly
def alert_list(channel: str) -> None:
    """List CHANNEL's alert rules with their state."""
    ch = manage.find_channel(channel)
    for rule in rules.rules_of(ch.id):
        if rule.kind == "threshold":
            what = f"{rules.field_name(rule)} {rule.op} {rule.threshold:g} for {rule.for_s}s"
        else:
            what = f"silence of {rule.device or 'the channel'} for {rule.silence_s}s"
        ways = ",".join(via for via, _ in evaluate.targets(rule)) or "no notification"
        click.echo(f"{rule.id}\t{rule.name}\t{what}\t{rule.state.upper()}\t{ways}")


@alert_group.command("history")
@click.argument("channel")
@click.argument("rule_id", type=int)
@with_appcontext
@friendly
def alert_history(channel: str, rule_id: int) -> None:
    """A rule's transitions, newest first, and what became of their notifications."""
    rule = rules.rule_of(manage.find_channel(channel).id, rule_id)
    for t in rules.history(rule.id):
        when = dt.datetime.fromtimestamp(t.at_us / 1e6, dt.UTC).isoformat(timespec="seconds")
        sent = ", ".join(f"{d.via} {_outcome(d)}" for d in t.deliveries)
        click.echo(f"{when}\t{t.state}\t{t.message}\t{sent}")


def _outcome(delivery: AlertDelivery) -> str:
    if delivery.delivered_us:
        return "delivered"
    error = f": {delivery.last_error}" if delivery.last_error else ""
    return ("FAILED" if delivery.failed else f"pending ({delivery.attempts} tries)") + error


@alert_group.command("test")
@click.argument("channel")
@click.argument("rule_id", type=int)
@with_appcontext
@friendly
def alert_test(channel: str, rule_id: int) -> None:
    """Queue a test notification by every way the rule has (the worker sends it)."""
    rule = rules.rule_of(manage.find_channel(channel).id, rule_id)
    evaluate.test_rule(rule, now_us())
    click.echo(f"test of rule {rule.id} queued")


@alert_group.command("delete")
@click.argument("channel")
@click.argument("rule_id", type=int)
@with_appcontext
@friendly
def alert_delete(channel: str, rule_id: int) -> None:
    """Delete a rule and its history."""
    rules.delete_rule(rules.rule_of(manage.find_channel(channel).id, rule_id))
    click.echo(f"deleted alert rule {rule_id}")


@click.command("set")
@click.argument("channel")
@click.option("--retention-days", help="Days of data to keep (none: forever).")
@click.option("--min-interval", help="Seconds between a device's writes (0: no rate limit).", type=int)
@with_appcontext
@friendly
def channel_set(channel: str, retention_days: str | None, min_interval: int | None) -> None:
    """Set a channel's retention and rate limit."""
    ch = manage.find_channel(channel)
    changes: dict[str, object] = {}
    if retention_days is not None:
        if retention_days.lower() == "none":
            changes["retention_days"] = None
        elif retention_days.isdigit() and 1 <= int(retention_days) <= manage.MAX_RETENTION_DAYS:
            changes["retention_days"] = int(retention_days)
        else:
            raise click.BadParameter(
                f"1 to {manage.MAX_RETENTION_DAYS} days, or none", param_hint="--retention-days"
            )
    if min_interval is not None:
        if not 0 <= min_interval <= manage.MAX_MIN_INTERVAL_S:
            raise click.BadParameter(f"0 to {manage.MAX_MIN_INTERVAL_S} seconds", param_hint="--min-interval")
        changes["min_interval_s"] = min_interval
    manage.update_channel(ch, **changes)
    keep = f"{ch.retention_days} days" if ch.retention_days else "forever"
    click.echo(f"channel {ch.id}: keeps data {keep}, at most one write every {ch.min_interval_s} s")


MONITORING_COMMANDS: list[click.Command] = [devices_group, alert_group, worker_command]
