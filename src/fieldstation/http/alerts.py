"""Management API: a channel's alert rules, their history and a test (issue 19)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from flask import Response, jsonify, url_for
from pydantic import Field as Constraint

from fieldstation import manage
from fieldstation.alerts import evaluate, rules
from fieldstation.auth import current_api_user
from fieldstation.http import api_bp
from fieldstation.http.jsonbody import Strict, parse_body
from fieldstation.models import AlertDelivery, AlertRule, Channel
from fieldstation.timeunits import now_us

Number = Annotated[float, Constraint(allow_inf_nan=False)]
FieldRef = Annotated[str, Constraint(min_length=1, max_length=255)] | Annotated[int, Constraint(ge=1)]


class RulePatch(Strict):
    name: Annotated[str, Constraint(min_length=1, max_length=200)] | None = None
    field: (
        Annotated[str, Constraint(min_length=1, max_length=255)] | Annotated[int, Constraint(ge=1)] | None
    ) = None
    op: Literal["above", "below"] | None = None
    threshold: Number | int | None = None
    for_s: Annotated[int, Constraint(ge=0, le=rules.MAX_FOR_S)] | None = None
    hysteresis: Number | int | None = None
    silence_s: Annotated[int, Constraint(ge=rules.MIN_SILENCE_S, le=rules.MAX_SILENCE_S)] | None = None
    device: Annotated[str, Constraint(max_length=64)] | None = None
    webhook_url: Annotated[str, Constraint(max_length=2000)] | None = None
    email_to: Annotated[str, Constraint(max_length=320)] | None = None
    mqtt_topic: Annotated[str, Constraint(max_length=255)] | None = None
    enabled: bool | None = None


class RuleIn(RulePatch):
    name: Annotated[str, Constraint(min_length=1, max_length=200)]
    kind: Literal["threshold", "silence"]


def _iso(us: int | None) -> str | None:
    if us is None:
        return None
    return dt.datetime.fromtimestamp(us / 1e6, dt.UTC).isoformat().replace("+00:00", "Z")


def rule_json(rule: AlertRule) -> dict[str, Any]:
    return {
        "id": rule.id,
        "name": rule.name,
        "kind": rule.kind,
        "field": rules.field_name(rule),
        "op": rule.op,
        "threshold": rule.threshold,
        "for_s": rule.for_s,
        "hysteresis": rule.hysteresis,
        "silence_s": rule.silence_s,
        "device": rule.device,
        "webhook_url": rule.webhook_url,
        "webhook_secret": rule.webhook_secret,
        "email_to": rule.email_to,
        "mqtt_topic": rule.mqtt_topic,
        "enabled": rule.enabled,
        "state": rule.state,
        "state_since": _iso(rule.state_since_us),
    }


def delivery_json(delivery: AlertDelivery) -> dict[str, Any]:
    return {
        "id": delivery.id,
        "via": delivery.via,
        "target": delivery.target,
        "attempts": delivery.attempts,
        "delivered_at": _iso(delivery.delivered_us),
        "failed": delivery.failed,
        "last_error": delivery.last_error,
    }


def _channel(channel_id: int) -> Channel:
    return manage.channel_for(current_api_user(), channel_id)


def _settings(body: RulePatch) -> dict[str, Any]:
    return body.model_dump(exclude_unset=True)


@api_bp.get("/channels/<int:channel_id>/alerts")
def list_alerts(channel_id: int) -> Response:
    """The channel's alert rules with their state."""
    return jsonify([rule_json(r) for r in rules.rules_of(_channel(channel_id).id)])


@api_bp.post("/channels/<int:channel_id>/alerts")
def create_alert(channel_id: int) -> Response:
    """Make a rule: 201 + Location."""
    channel = _channel(channel_id)
    rule = rules.create_rule(channel, now_us(), **_settings(parse_body(RuleIn)))
    response = jsonify(rule_json(rule))
    response.status_code = 201
    response.headers["Location"] = url_for("api.get_alert", channel_id=channel.id, rule_id=rule.id)
    return response


@api_bp.get("/channels/<int:channel_id>/alerts/<int:rule_id>")
def get_alert(channel_id: int, rule_id: int) -> Response:
    return jsonify(rule_json(rules.rule_of(_channel(channel_id).id, rule_id)))


@api_bp.patch("/channels/<int:channel_id>/alerts/<int:rule_id>")
def update_alert(channel_id: int, rule_id: int) -> Response:
    """Change a rule's settings (its kind stays)."""
    channel = _channel(channel_id)
    rule = rules.rule_of(channel.id, rule_id)
    return jsonify(rule_json(rules.update_rule(rule, channel, **_settings(parse_body(RulePatch)))))


@api_bp.delete("/channels/<int:channel_id>/alerts/<int:rule_id>")
def delete_alert(channel_id: int, rule_id: int) -> Response:
    rules.delete_rule(rules.rule_of(_channel(channel_id).id, rule_id))
    return Response(status=204)


@api_bp.get("/channels/<int:channel_id>/alerts/<int:rule_id>/history")
def alert_history(channel_id: int, rule_id: int) -> Response:
    """The rule's latest transitions, newest first, and what became of their notifications."""
    rule = rules.rule_of(_channel(channel_id).id, rule_id)
    return jsonify(
        [
            {
                "at": _iso(t.at_us),
                "state": t.state,
                "value": t.value,
                "message": t.message,
                "deliveries": [delivery_json(d) for d in t.deliveries],
            }
            for t in rules.history(rule.id)
        ]
    )


@api_bp.post("/channels/<int:channel_id>/alerts/<int:rule_id>/test")
def test_alert(channel_id: int, rule_id: int) -> tuple[Response, int]:
    """Queue a test notification by every way the rule has; the worker sends it (202)."""
    rule = rules.rule_of(_channel(channel_id).id, rule_id)
    evaluate.test_rule(rule, now_us())
    return jsonify({"queued": len(evaluate.targets(rule))}), 202
