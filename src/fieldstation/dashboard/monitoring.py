"""The dashboard's view of a channel's health: devices seen, alert rules and their history (issue 19).

The owner makes, tests and deletes alert rules on the channel page; the channel
list shows, per channel, the rules firing and the devices gone silent.
"""

from __future__ import annotations

from typing import Any

from flask import flash, redirect, url_for
from werkzeug.wrappers import Response

from fieldstation import devices, manage
from fieldstation.alerts import evaluate, rules
from fieldstation.dashboard.blueprint import bp
from fieldstation.dashboard.forms import ActionForm, AlertForm
from fieldstation.dashboard.session import login_required, me
from fieldstation.errors import BadRequest
from fieldstation.models import Channel
from fieldstation.timeunits import now_us


def summary(channel: Channel) -> dict[str, Any]:
    """Devices seen (silent ones flagged) and alert rules with their recent transitions, for the owner."""
    seen = devices.seen(channel.id, now_us())
    alert_rules = rules.rules_of(channel.id)
    return {
        "devices": seen,
        "silent": [d for d in seen if d.silent],
        "rules": [(rule, rules.field_name(rule), rules.history(rule.id, 10)) for rule in alert_rules],
        "firing": [rule for rule in alert_rules if rule.state == "firing"],
        "form": AlertForm(formdata=None),
        "action": ActionForm(formdata=None),
    }


def overview(channel_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Per channel: its firing rules and its silent devices (the channel list's badges)."""
    firing = rules.firing_by_channel(channel_ids)
    now = now_us()
    return {
        cid: {"firing": firing.get(cid, []), "silent": [d for d in devices.seen(cid, now) if d.silent]}
        for cid in channel_ids
    }


def limits_from(retention: str | None, interval: str | None) -> dict[str, Any]:
    """The channel form's retention (days, empty: forever) and rate limit (seconds)."""
    settings: dict[str, Any] = {}
    text = (retention or "").strip()
    if text and not (text.isdigit() and 1 <= int(text) <= manage.MAX_RETENTION_DAYS):
        raise BadRequest(
            f"keep data for 1 to {manage.MAX_RETENTION_DAYS} days, or leave it empty to keep it forever"
        )
    settings["retention_days"] = int(text) if text else None
    text = (interval or "").strip() or "0"
    if not (text.isdigit() and int(text) <= manage.MAX_MIN_INTERVAL_S):
        raise BadRequest(f"the rate limit is 0 to {manage.MAX_MIN_INTERVAL_S} seconds")
    settings["min_interval_s"] = int(text)
    return settings


def _number(text: str | None, what: str) -> float | None:
    raw = (text or "").strip()
    if not raw:
        return None
    try:
        return float(raw)
    except ValueError:
        raise BadRequest(f"{what} must be a number") from None


def _minutes(text: str | None, what: str) -> int | None:
    value = _number(text, what)
    return None if value is None else round(value * 60)


def _rule_settings(form: AlertForm) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "name": form.name.data,
        "kind": form.kind.data,
        "webhook_url": (form.webhook_url.data or "").strip() or None,
        "email_to": (form.email_to.data or "").strip() or None,
        "mqtt_topic": (form.mqtt_topic.data or "").strip() or None,
    }
    if form.kind.data == "threshold":
        field = (form.field.data or "").strip()
        settings |= {
            "field": int(field) if field.isdigit() else field,
            "op": form.op.data or "above",
            "threshold": _number(form.threshold.data, "the value"),
            "for_s": _minutes(form.for_minutes.data, "for (minutes)") or 0,
            "hysteresis": _number(form.hysteresis.data, "hysteresis") or 0.0,
        }
    else:
        settings |= {
            "silence_s": _minutes(form.silence_minutes.data, "silent for (minutes)"),
            "device": (form.device.data or "").strip() or None,
        }
    return settings


@bp.post("/dashboard/channels/<int:channel_id>/alerts")
@login_required
def create_alert(channel_id: int) -> Response:
    """Make an alert rule from the channel page's form."""
    channel = manage.channel_for(me(), channel_id)
    form = AlertForm()
    if not form.validate():
        first = next(iter(form.errors.items()))
        raise BadRequest(f"{first[0]}: {first[1][0]}")
    rule = rules.create_rule(channel, now_us(), **_rule_settings(form))
    flash(f"Alert rule {rule.name!r} made.")
    return redirect(url_for("dashboard.channel_view", channel_id=channel.id) + "#alerts")


@bp.post("/dashboard/channels/<int:channel_id>/alerts/<int:rule_id>/test")
@login_required
def test_alert(channel_id: int, rule_id: int) -> Response:
    """The test button: a test notification by every way the rule has."""
    channel = manage.channel_for(me(), channel_id)
    rule = rules.rule_of(channel.id, rule_id)
    evaluate.test_rule(rule, now_us())
    flash(f"Test of {rule.name!r} queued; the worker sends it within seconds.")
    return redirect(url_for("dashboard.channel_view", channel_id=channel.id) + "#alerts")


@bp.post("/dashboard/channels/<int:channel_id>/alerts/<int:rule_id>/delete")
@login_required
def delete_alert(channel_id: int, rule_id: int) -> Response:
    channel = manage.channel_for(me(), channel_id)
    rules.delete_rule(rules.rule_of(channel.id, rule_id))
    flash("Alert rule deleted.")
    return redirect(url_for("dashboard.channel_view", channel_id=channel.id) + "#alerts")
