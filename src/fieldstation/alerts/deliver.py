"""The outbox: each notification sent at least once, with its delivery id, retried with backoff.

A worker claims one due delivery at a time (a lease in ``claimed_until_us``;
on PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets workers on several hosts take
different ones), sends it, and records the outcome. A worker killed after
sending and before recording leaves the claim to run out; the next worker sends
it again with the same delivery id, which receivers use to drop the repeat.
After ``ALERT_MAX_ATTEMPTS`` failures a delivery is marked failed, with the
last error, and not tried again.

Passwords never reach a log or a delivery's ``last_error``: errors are
recorded by their class and the server's answer, never with the settings.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import smtplib
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any
from urllib.parse import urljoin, urlsplit

from sqlalchemy import text

from fieldstation import metrics
from fieldstation.extensions import db
from fieldstation.models import AlertDelivery
from fieldstation.timeunits import US

log = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Fieldstation-Signature"
DELIVERY_HEADER = "X-Fieldstation-Delivery"
#: Redirects a webhook may take (each to http or https only).
MAX_REDIRECTS = 3
#: Longest wait before a retry.
MAX_BACKOFF_S = 3600


class DeliveryError(Exception):
    """A notification could not be delivered; the message is safe to record."""


@dataclass(frozen=True, slots=True)
class Settings:
    """What delivery needs from the app's config."""

    lease_s: float
    max_attempts: int
    retry_base_s: float
    webhook_timeout_s: float
    webhook_max_bytes: int
    smtp: Mapping[str, Any]
    mqtt_url: str | None
    mqtt_ca_file: str | None

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Settings:
        return cls(
            lease_s=float(config["ALERT_LEASE_S"]),
            max_attempts=int(config["ALERT_MAX_ATTEMPTS"]),
            retry_base_s=float(config["ALERT_RETRY_BASE_S"]),
            webhook_timeout_s=float(config["WEBHOOK_TIMEOUT_S"]),
            webhook_max_bytes=int(config["WEBHOOK_MAX_RESPONSE_BYTES"]),
            smtp={k: config[k] for k in config if k.startswith("SMTP_")},
            mqtt_url=config.get("ALERT_MQTT_URL"),
            mqtt_ca_file=config.get("ALERT_MQTT_CA_FILE"),
        )


_CLAIM = {
    "postgresql": text(
        "UPDATE alert_deliveries SET claimed_until_us = :until WHERE id = ("
        "SELECT id FROM alert_deliveries WHERE delivered_us IS NULL AND failed = false "
        "AND next_attempt_us <= :now AND (claimed_until_us IS NULL OR claimed_until_us <= :now) "
        "ORDER BY next_attempt_us, id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id"
    ),
    "sqlite": text(
        "UPDATE alert_deliveries SET claimed_until_us = :until WHERE id = ("
        "SELECT id FROM alert_deliveries WHERE delivered_us IS NULL AND failed = 0 "
        "AND next_attempt_us <= :now AND (claimed_until_us IS NULL OR claimed_until_us <= :now) "
        "ORDER BY next_attempt_us, id LIMIT 1) RETURNING id"
    ),
}


def claim(now: int, lease_s: float) -> AlertDelivery | None:
    """Take the next due delivery for ``lease_s`` seconds (None: nothing is due)."""
    session = db.session
    dialect = session.get_bind().dialect.name
    delivery_id = session.execute(_CLAIM[dialect], {"now": now, "until": now + int(lease_s * US)}).scalar()
    session.commit()
    if delivery_id is None:
        return None
    return session.get(AlertDelivery, delivery_id)


def deliver_due(settings: Settings, clock: Any, limit: int = 100) -> int:
    """Send up to ``limit`` due deliveries; returns how many were delivered."""
    delivered = 0
    for _ in range(limit):
        delivery = claim(clock(), settings.lease_s)
        if delivery is None:
            break
        delivered += attempt(delivery, settings, clock)
    return delivered


def attempt(delivery: AlertDelivery, settings: Settings, clock: Any) -> int:
    """Send one claimed delivery and record the outcome; 1 when it was delivered."""
    session = db.session
    try:
        try:
            send(delivery, settings)
        except DeliveryError:
            raise
        except Exception as exc:  # a failure nobody foresaw is still a recorded failure, not a loop
            log.exception("alert delivery %s by %s failed unexpectedly", delivery.id, delivery.via)
            raise DeliveryError(f"{delivery.via} failed: {type(exc).__name__}") from None
    except DeliveryError as exc:
        error = str(exc)[:1000]
        delivery.attempts += 1
        delivery.last_error = error
        delivery.claimed_until_us = None
        if delivery.attempts >= settings.max_attempts:
            delivery.failed = True
        else:
            backoff = min(settings.retry_base_s * 2 ** (delivery.attempts - 1), MAX_BACKOFF_S)
            delivery.next_attempt_us = clock() + int(backoff * US)
        session.commit()
        metrics.DELIVERY_FAILURES.labels(delivery.via).inc()
        log.warning(
            "alert delivery %s by %s failed (attempt %d): %s",
            delivery.id,
            delivery.via,
            delivery.attempts,
            error,
        )
        return 0
    delivery.attempts += 1
    delivery.delivered_us = clock()
    delivery.last_error = None
    session.commit()
    metrics.DELIVERIES.labels(delivery.via).inc()
    return 1


def send(delivery: AlertDelivery, settings: Settings) -> None:
    """Send one delivery by its way; :raise DeliveryError: with a message safe to record."""
    body = delivery.payload.encode()
    if delivery.via == "webhook":
        secret = _rule_secret(delivery)
        send_webhook(
            delivery.target, body, secret, delivery.id, settings.webhook_timeout_s, settings.webhook_max_bytes
        )
    elif delivery.via == "email":
        send_email(settings.smtp, delivery.target, json.loads(body), delivery.id)
    elif delivery.via == "mqtt":
        send_mqtt(settings.mqtt_url, settings.mqtt_ca_file, delivery.target, body)
    else:  # pragma: no cover - the rules make only these three
        raise DeliveryError(f"unknown way {delivery.via!r}")


def _rule_secret(delivery: AlertDelivery) -> str:
    row = db.session.execute(
        text(
            "SELECT r.webhook_secret FROM alert_rules r JOIN alert_transitions t ON t.rule_id = r.id "
            "WHERE t.id = :transition"
        ),
        {"transition": delivery.transition_id},
    ).first()
    return str(row[0]) if row else ""


def signature(secret: str, body: bytes) -> str:
    """The value of the signature header: ``sha256=`` and the HMAC-SHA256 of the body, in hex."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def send_webhook(
    url: str, body: bytes, secret: str, delivery_id: str, timeout_s: float, max_bytes: int
) -> None:
    """POST the JSON body; a 2xx answer is delivered.

    Redirects are followed by hand, to http(s) only and at most :data:`MAX_REDIRECTS`;
    the whole exchange is bounded by ``timeout_s`` and the answer read to ``max_bytes`` at most.
    """
    import requests  # here: the web workers import this module (the CLI's) but never send

    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Fieldstation-Alerts/1",
        SIGNATURE_HEADER: signature(secret, body),
        DELIVERY_HEADER: delivery_id,
    }
    deadline = time.monotonic() + timeout_s
    for _ in range(MAX_REDIRECTS + 1):
        if urlsplit(url).scheme not in ("http", "https"):
            raise DeliveryError(f"webhook target is not http(s): {url[:200]}")
        left = deadline - time.monotonic()
        if left <= 0:
            raise DeliveryError(f"webhook timed out after {timeout_s:g} s")
        try:
            with requests.post(
                url,
                data=body,
                headers=headers,
                timeout=(min(left, 5.0), left),
                allow_redirects=False,
                stream=True,
            ) as answer:
                size = 0
                for chunk in answer.iter_content(8192):
                    size += len(chunk)
                    if size > max_bytes:
                        raise DeliveryError(f"webhook answer larger than {max_bytes} bytes")
                    if time.monotonic() > deadline:
                        raise DeliveryError(f"webhook timed out after {timeout_s:g} s")
                if answer.is_redirect and "Location" in answer.headers:
                    url = urljoin(url, answer.headers["Location"])
                    continue
                if 200 <= answer.status_code < 300:
                    return
                raise DeliveryError(f"webhook answered {answer.status_code}")
        except requests.RequestException as exc:
            raise DeliveryError(f"webhook failed: {type(exc).__name__}") from None
    raise DeliveryError(f"webhook redirected more than {MAX_REDIRECTS} times")


def send_email(smtp: Mapping[str, Any], to: str, body: dict[str, Any], delivery_id: str) -> None:
    """Mail the notification over SMTP (``SMTP_SECURITY``: starttls, tls or none)."""
    host = smtp.get("SMTP_HOST")
    if not host:
        raise DeliveryError("no SMTP_HOST configured")
    message = EmailMessage()
    message["From"] = str(smtp.get("SMTP_FROM") or "fieldstation@localhost")
    message["To"] = to
    event = str(body["event"]).upper()
    message["Subject"] = f"[Fieldstation] {event}: {body['rule']['name']} ({body['channel']['name']})"
    message["Message-ID"] = f"<{delivery_id}@fieldstation>"
    message[DELIVERY_HEADER] = delivery_id
    message.set_content(f"{body['message']}\n\n{json.dumps(body, indent=2)}\n")
    security = str(smtp.get("SMTP_SECURITY") or "starttls")
    port = int(smtp.get("SMTP_PORT") or (465 if security == "tls" else 587))
    timeout = float(smtp.get("SMTP_TIMEOUT_S") or 10)
    context = ssl.create_default_context(cafile=smtp.get("SMTP_CA_FILE") or None)
    try:
        client: smtplib.SMTP
        if security == "tls":
            client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if security == "starttls":
                client.starttls(context=context)
            if smtp.get("SMTP_USERNAME"):
                client.login(str(smtp["SMTP_USERNAME"]), str(smtp.get("SMTP_PASSWORD") or ""))
            client.send_message(message)
    except smtplib.SMTPResponseException as exc:
        raise DeliveryError(f"SMTP server answered {exc.smtp_code}") from None
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        raise DeliveryError(f"SMTP failed: {type(exc).__name__}") from None


def send_mqtt(url: str | None, ca_file: str | None, topic: str, body: bytes, timeout_s: float = 10) -> None:
    """Publish the JSON body to ``topic`` (QoS 1) on the broker of ``ALERT_MQTT_URL``."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from fieldstation.broker import Broker
    from fieldstation.errors import BadRequest

    if not url:
        raise DeliveryError("no ALERT_MQTT_URL configured")
    try:
        broker = Broker.from_url(url)
    except BadRequest as exc:
        raise DeliveryError(exc.message) from None
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    if broker.username:
        client.username_pw_set(broker.username, broker.password)
    if broker.tls:
        client.tls_set(ca_certs=ca_file)
    try:
        client.connect(broker.host, broker.port, keepalive=30)
        client.loop_start()
        try:
            info = client.publish(topic, body, qos=1)
            info.wait_for_publish(timeout_s)
            if not info.is_published():
                raise DeliveryError("MQTT broker did not acknowledge the message in time")
        finally:
            client.disconnect()
            client.loop_stop()
    except (OSError, ValueError, RuntimeError) as exc:
        raise DeliveryError(f"MQTT failed: {type(exc).__name__}") from None
