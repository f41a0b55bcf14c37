"""Alert rules: thresholds and silences on a moved clock, notifications through real servers."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Iterator
from email import message_from_bytes
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldstation import store
from fieldstation.alerts import deliver, evaluate, rules
from fieldstation.extensions import db
from fieldstation.models import AlertDelivery, AlertRule
from fieldstation.points import Batch, Entry
from fieldstation.timeunits import US, now_us
from fieldstation.worker import claim_job, run_once
from tests.conftest import unavailable
from tests.factories import Account, ChannelKeys, make_channel, make_user
from tests.servers import Mosquitto, SmtpServer, WebhookReceiver, start_mosquitto

MIN = 60 * US
T0 = 1_800_000_000 * US  # a fixed "now" the tests move by hand


@pytest.fixture
def account(app: Flask) -> Account:
    return make_user()


@pytest.fixture
def channel(account: Account) -> ChannelKeys:
    return make_channel(account.user)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    server = WebhookReceiver()
    yield server
    server.stop()


def write(
    channel: ChannelKeys, ts: int, value: float, device: str | None = None, arrived: int | None = None
) -> None:
    store.write(Batch(channel.id, [Entry({1: value}, ts)], device=device), now=arrived or ts)


def states(rule_id: int) -> list[str]:
    db.session.rollback()  # read what the workers committed
    return [t.state for t in reversed(rules.history(rule_id))]


class Clock:
    """The worker's clock, moved by the test."""

    def __init__(self, now: int) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def threshold_rule(channel: ChannelKeys, **extra: Any) -> AlertRule:
    settings = {"name": "hot", "kind": "threshold", "field": "temperature", "op": "above", "threshold": 30.0}
    return rules.create_rule(channel.channel, T0 - 10 * MIN, **(settings | extra))


def test_above_for_two_minutes_fires_once_on_the_reading_that_completes_them(channel: ChannelKeys) -> None:
    rule = threshold_rule(channel, for_s=120, hysteresis=1.0)
    write(channel, T0, 29)
    write(channel, T0 + 30 * US, 31)  # the streak starts here
    write(channel, T0 + 90 * US, 32)
    assert evaluate.evaluate_thresholds(T0 + 91 * US) == 0  # 60 s of it so far
    write(channel, T0 + 149 * US, 33)
    assert evaluate.evaluate_thresholds(T0 + 150 * US) == 0  # 119 s
    write(channel, T0 + 150 * US, 31)
    assert evaluate.evaluate_thresholds(T0 + 151 * US) == 1  # 120 s: fires
    assert evaluate.evaluate_thresholds(T0 + 152 * US) == 0  # nothing new: not looked at again
    write(channel, T0 + 160 * US, 35)
    assert evaluate.evaluate_thresholds(T0 + 161 * US) == 0  # still firing: no second notification
    write(channel, T0 + 170 * US, 29.5)  # below 30 but within the hysteresis
    assert evaluate.evaluate_thresholds(T0 + 171 * US) == 0
    write(channel, T0 + 180 * US, 29)  # at 30 - 1: resolved
    assert evaluate.evaluate_thresholds(T0 + 181 * US) == 1
    write(channel, T0 + 190 * US, 28)
    assert evaluate.evaluate_thresholds(T0 + 191 * US) == 0
    assert states(rule.id) == ["firing", "ok"]


def test_a_gap_in_the_streak_starts_it_again(channel: ChannelKeys) -> None:
    rule = threshold_rule(channel, for_s=120, op="below", threshold=0.0)
    for offset, value in [(0, -1), (60, 2), (100, -1), (200, -2)]:
        write(channel, T0 + offset * US, value)
        evaluate.evaluate_thresholds(T0 + (offset + 1) * US)
    assert states(rule.id) == []  # -1 at 100 and -2 at 200: only 100 s below
    write(channel, T0 + 220 * US, -3)
    evaluate.evaluate_thresholds(T0 + 221 * US)
    assert states(rule.id) == ["firing"]


def test_silence_of_channel_and_device_on_a_moved_clock(channel: ChannelKeys) -> None:
    quiet = rules.create_rule(channel.channel, T0, name="quiet", kind="silence", silence_s=600)
    gone = rules.create_rule(channel.channel, T0, name="gone", kind="silence", silence_s=600, device="AA:01")
    write(channel, T0, 1.0, device="aa:01")
    write(channel, T0 + 5 * MIN, 1.0, device="bb:02")
    assert evaluate.evaluate_silences(T0 + 9 * MIN) == 0
    assert evaluate.evaluate_silences(T0 + 11 * MIN) == 1  # aa:01 quiet for 11 minutes
    assert states(gone.id) == ["firing"] and states(quiet.id) == []
    assert evaluate.evaluate_silences(T0 + 16 * MIN) == 1  # the channel too, now
    assert evaluate.evaluate_silences(T0 + 17 * MIN) == 0  # each fires once
    write(channel, T0 + 18 * MIN, 2.0, device="aa:01")
    assert evaluate.evaluate_silences(T0 + 18 * MIN + US) == 2
    assert states(gone.id) == ["firing", "ok"] and states(quiet.id) == ["firing", "ok"]


def test_two_workers_deciding_the_same_change_record_it_once(channel: ChannelKeys) -> None:
    rule = threshold_rule(channel)
    write(channel, T0, 40)
    stale = db.session.get(AlertRule, rule.id)
    assert stale is not None and stale.state == "ok"
    assert evaluate.transition(stale, "firing", T0, 40, "first") == 1
    stale.state = "ok"  # what a second worker read before the first committed
    assert evaluate.transition(stale, "firing", T0, 40, "second") == 0
    assert states(rule.id) == ["firing"]
    assert claim_job("rollups", 60, T0) and not claim_job("rollups", 60, T0 + US)
    assert claim_job("rollups", 60, T0 + 61 * US)


def delivery_settings(app: Flask, **extra: Any) -> deliver.Settings:
    app.config.update({"ALERT_RETRY_BASE_S": 10, "ALERT_MAX_ATTEMPTS": 3, "WEBHOOK_TIMEOUT_S": 3, **extra})
    return deliver.Settings.from_config(app.config)


def test_webhook_body_signature_retries_and_failure_record(
    app: Flask, channel: ChannelKeys, receiver: WebhookReceiver
) -> None:
    rule = threshold_rule(channel, webhook_url=receiver.url)
    write(channel, T0, 31)
    assert evaluate.evaluate_thresholds(T0) == 1
    receiver.answers = [500, 503]
    clock = Clock(T0)
    config = delivery_settings(app)
    assert deliver.deliver_due(config, clock) == 0  # 500: retried in 10 s
    assert deliver.deliver_due(config, clock) == 0  # not due yet
    clock.now += 10 * US
    assert deliver.deliver_due(config, clock) == 0  # 503: retried in 20 s
    clock.now += 19 * US
    assert deliver.deliver_due(config, clock) == 0
    clock.now += 1 * US
    assert deliver.deliver_due(config, clock) == 1
    assert len(receiver.requests) == 3
    ids = {headers["x-fieldstation-delivery"] for headers, _ in receiver.requests}
    assert len(ids) == 1  # every attempt carries the same delivery id
    headers, body = receiver.requests[-1]
    expected = "sha256=" + hmac.new(rule.webhook_secret.encode(), body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(headers["x-fieldstation-signature"], expected)
    sent = json.loads(body)
    assert sent["delivery_id"] in ids and sent["event"] == "firing" and sent["value"] == 31
    assert sent["rule"]["field"] == "temperature" and sent["channel"]["id"] == channel.id
    # three failures in a row: given up, with the reason on record
    receiver.answers = [500, 500, 500]
    write(channel, T0 + MIN, 20)
    evaluate.evaluate_thresholds(T0 + MIN)
    for _ in range(3):
        clock.now += 3600 * US
        deliver.deliver_due(config, clock)
    db.session.rollback()
    (latest, _first) = rules.history(rule.id)
    (failed,) = latest.deliveries
    assert failed.failed and failed.attempts == 3 and failed.last_error == "webhook answered 500"


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/x",
        "javascript:alert(1)",
        "http://",
        "http://x:99999/",
        "gopher://a",
    ],
)
def test_hostile_webhook_urls_are_refused(
    client: FlaskClient, account: Account, channel: ChannelKeys, url: str
) -> None:
    body = {"name": "x", "kind": "silence", "silence_s": 60, "webhook_url": url}
    answer = client.post(f"/api/v1/channels/{channel.id}/alerts", json=body, headers=account.headers)
    assert answer.status_code == 400 and answer.json["error"]["code"] in ("bad_url", "invalid_body")


def test_webhook_redirects_sizes_and_hangs_end_in_a_recorded_failure(
    app: Flask, receiver: WebhookReceiver
) -> None:
    def to_file(handler: Any) -> None:
        handler.send_response(302)
        handler.send_header("Location", "file:///etc/passwd")
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def huge(handler: Any) -> None:
        handler.send_response(200)
        handler.send_header("Content-Length", str(10_000_000))
        handler.end_headers()
        handler.wfile.write(b"x" * 1_000_000)

    def slow(handler: Any) -> None:
        time.sleep(3)

    def send() -> str:
        try:
            deliver.send_webhook(receiver.url, b"{}", "secret", "id-1", 1.0, 65536)
        except deliver.DeliveryError as exc:
            return str(exc)
        return "delivered"

    receiver.answers = [to_file, huge, slow]
    assert send() == "webhook target is not http(s): file:///etc/passwd"
    assert send() == "webhook answer larger than 65536 bytes"
    started = time.monotonic()
    assert send() == "webhook failed: ReadTimeout"
    assert time.monotonic() - started < 2.5


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_email_over_tls_with_login_never_logs_the_password(
    app: Flask, channel: ChannelKeys, security: str, caplog: pytest.LogCaptureFixture
) -> None:
    try:
        server = SmtpServer(tls=security)
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    try:
        caplog.set_level(logging.DEBUG)
        rule = threshold_rule(channel, email_to="ops@example.org")
        write(channel, T0, 31)
        evaluate.evaluate_thresholds(T0)
        assert deliver.deliver_due(delivery_settings(app, **server.config(security)), Clock(T0)) == 1
        ((sender, recipients, raw),) = server.messages
        mail = message_from_bytes(raw)
        assert sender == "alerts@example.org" and recipients == ["ops@example.org"]
        assert mail["Subject"] == "[Fieldstation] FIRING: hot (weather)"
        assert mail["X-Fieldstation-Delivery"] in mail["Message-ID"]
        assert "temperature is 31: above 30" in mail.get_payload()
        assert server.logins == ["alerts"]
        assert server.password not in caplog.text
        # a wrong password is a recorded failure that names no secret
        server.password = "changed"
        evaluate.test_rule(rule, T0)
        config = delivery_settings(app, **server.config(security) | {"SMTP_PASSWORD": "wrong secret"})
        assert deliver.deliver_due(config, Clock(T0)) == 0
        failed = db.session.query(AlertDelivery).filter(AlertDelivery.delivered_us.is_(None)).one()
        assert failed.last_error in ("SMTP server answered 535", "SMTP failed: SMTPServerDisconnected")
        assert "wrong secret" not in caplog.text and server.logins == ["alerts"]
    finally:
        server.stop()


def test_email_to_a_server_that_hangs_is_a_recorded_failure(app: Flask, channel: ChannelKeys) -> None:
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # accepts, never greets
    try:
        threshold_rule(channel, email_to="ops@example.org")
        write(channel, T0, 31)
        evaluate.evaluate_thresholds(T0)
        config = {"SMTP_HOST": "127.0.0.1", "SMTP_PORT": listener.getsockname()[1], "SMTP_TIMEOUT_S": 0.5}
        started = time.monotonic()
        assert deliver.deliver_due(delivery_settings(app, **config), Clock(T0)) == 0
        assert time.monotonic() - started < 3
        failed = db.session.query(AlertDelivery).one()
        assert (
            failed.last_error == "SMTP failed: SMTPServerDisconnected" and failed.attempts == 1
        )  # timed out
    finally:
        listener.close()


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    try:
        server = start_mosquitto()
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    yield server
    server.stop()


def test_mqtt_publish_to_the_users_topic(app: Flask, channel: ChannelKeys, broker: Mosquitto) -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got: list[bytes] = []
    subscriber = mqtt.Client(CallbackAPIVersion.VERSION2)
    subscriber.on_message = lambda _c, _u, message: got.append(message.payload)
    subscriber.connect("127.0.0.1", broker.port)
    subscriber.subscribe("home/alerts/freezer", qos=1)
    subscriber.loop_start()
    try:
        time.sleep(0.3)
        threshold_rule(channel, mqtt_topic="home/alerts/freezer")
        write(channel, T0, 31)
        evaluate.evaluate_thresholds(T0)
        assert deliver.deliver_due(delivery_settings(app, ALERT_MQTT_URL=broker.url), Clock(T0)) == 1
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.05)
        (payload,) = got
        assert json.loads(payload)["event"] == "firing"
    finally:
        subscriber.loop_stop()
        subscriber.disconnect()


def test_management_api(
    client: FlaskClient, account: Account, channel: ChannelKeys, receiver: WebhookReceiver
) -> None:
    url = f"/api/v1/channels/{channel.id}/alerts"
    body = {
        "name": "hot",
        "kind": "threshold",
        "field": "temperature",
        "op": "above",
        "threshold": 30,
        "for_s": 120,
    }
    made = client.post(url, json=body | {"webhook_url": receiver.url}, headers=account.headers)
    assert made.status_code == 201, made.text
    rule_url = made.headers["Location"]
    assert made.json["state"] == "ok" and len(made.json["webhook_secret"]) == 64
    assert client.get(url, headers=account.headers).json[0]["field"] == "temperature"
    assert client.patch(rule_url, json={"threshold": 25.5}, headers=account.headers).json["threshold"] == 25.5
    assert client.post(f"{rule_url}/test", headers=account.headers).status_code == 202
    run_once(client.application.config, now_us)
    (test,) = client.get(f"{rule_url}/history", headers=account.headers).json
    assert test["state"] == "test" and test["deliveries"][0]["delivered_at"] is not None
    assert receiver.bodies()[0]["event"] == "test"
    bad = [
        body | {"field": "nope"},
        body | {"threshold": 1e300},
        body | {"for_s": -1},
        body | {"for_s": 10**9},
        body | {"op": "sideways"},
        body | {"colour": "red"},
        {"name": "s", "kind": "silence"},
        {"name": "s", "kind": "silence", "silence_s": 1},
        body | {"email_to": "not an address"},
        body | {"email_to": "ü@example.org"},
        body | {"email_to": "a@b.c, d@e.f"},
        body | {"mqtt_topic": "a/#"},
        body | {"hysteresis": -1},
        {"name": "x", "kind": "threshold", "field": "temperature", "op": "above"},
    ]
    for payload in bad:
        answer = client.post(url, json=payload, headers=account.headers)
        assert answer.status_code == 400, (payload, answer.text)
    raw = b'{"name": "x", "kind": "threshold", "field": 1, "op": "above", "threshold": 1e999}'
    answer = client.post(url, data=raw, headers=account.headers | {"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert client.get(url, headers=make_user("bob").headers).status_code == 404
    assert client.delete(rule_url, headers=account.headers).status_code == 204
    assert client.get(rule_url, headers=account.headers).status_code == 404


def test_cli(app: Flask, channel: ChannelKeys) -> None:
    runner = app.test_cli_runner()
    made = runner.invoke(
        args=["alert", "create", "weather", "--name", "hot", "--field", "temperature", "--above", "30"]
        + ["--for", "2m", "--webhook", "http://127.0.0.1:9/x"]
    )
    assert made.exit_code == 0, made.output
    listed = runner.invoke(args=["alert", "list", "weather"])
    assert "temperature above 30 for 120s" in listed.output and "OK" in listed.output
    refused = runner.invoke(
        args=["alert", "create", "weather", "--name", "x", "--silence", "1m", "--webhook", "file:///x"]
    )
    assert refused.exit_code == 1 and "http://" in refused.output
    assert runner.invoke(args=["alert", "test", "weather", "1"]).exit_code == 0
    assert runner.invoke(args=["worker", "--once"]).exit_code == 0  # port 9 answers nothing: a failed attempt
    history = runner.invoke(args=["alert", "history", "weather", "1"]).output
    assert "\ttest\t" in history and "webhook pending (1 tries): webhook failed: ConnectionError" in history
    limits = runner.invoke(
        args=["channel", "set", "weather", "--retention-days", "30", "--min-interval", "15"]
    )
    assert limits.exit_code == 0 and "30 days" in limits.output and "15 s" in limits.output
    assert runner.invoke(args=["channel", "set", "weather", "--retention-days", "0"]).exit_code != 0


_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=80),
    st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2),
)  # fmt: skip
_bodies = st.dictionaries(st.sampled_from([*rules.SETTINGS, "colour"]), _values, max_size=8).map(
    lambda body: {"name": "r", "kind": "threshold", **body}
)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=_bodies)
def test_any_rule_body_is_made_or_refused_with_a_4xx(
    client: FlaskClient, account: Account, channel: ChannelKeys, body: dict[str, Any]
) -> None:
    answer = client.post(f"/api/v1/channels/{channel.id}/alerts", json=body, headers=account.headers)
    assert answer.status_code in (201, 400), (body, answer.text)
    if answer.status_code == 201:  # what was made reads back as it was given, and goes again
        rule = answer.json
        assert (
            rule["kind"] == body["kind"]
            and client.delete(
                f"/api/v1/channels/{channel.id}/alerts/{rule['id']}", headers=account.headers
            ).status_code
            == 204
        )
