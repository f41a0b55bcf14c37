"""The MQTT worker against a real Mosquitto, on SQLite and PostgreSQL, with paho-mqtt publishers."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from flask import Flask
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import func, select

from fieldstation import manage
from fieldstation.broker import Broker
from fieldstation.extensions import db
from fieldstation.models import Channel, EntryRecord, Field, ReadingRecord
from fieldstation.mqtt.listener import Listener, Settings
from fieldstation.mqtt.topics import TasmotaMap
from fieldstation.points import parse_time
from tests.conftest import unavailable
from tests.factories import ChannelKeys, make_channel, make_user
from tests.servers import Mosquitto, start_mosquitto


@pytest.fixture(scope="module")
def broker() -> Iterator[Mosquitto]:
    """An anonymous Mosquitto for this module."""
    try:
        server = start_mosquitto()
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    yield server
    server.stop()


@pytest.fixture(scope="module")
def locked_broker() -> Iterator[Mosquitto]:
    """A Mosquitto that requires a user name and password (password file)."""
    try:
        server = start_mosquitto(username="worker", password="s3cret pass")
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    yield server
    server.stop()


Start = Callable[..., Listener]


@pytest.fixture
def worker(app: Flask) -> Iterator[Start]:
    """Start listeners in threads of this process (the CLI runs the same object in its own process)."""
    running: list[tuple[Listener, threading.Thread]] = []

    def start(server: Mosquitto, tasmota: dict[str, TasmotaMap] | None = None, **options: Any) -> Listener:
        options.setdefault("client_id", f"test-{uuid.uuid4().hex[:8]}")
        options.setdefault("session_expiry", 0)  # no session outlives its test
        options.setdefault("batch_interval", 0.05)
        listener = Listener(app, Settings(Broker.from_url(server.url), **options), tasmota or {})
        thread = threading.Thread(target=listener.run, daemon=True)
        thread.start()
        running.append((listener, thread))
        assert listener.subscribed.wait(10), "the worker did not subscribe"
        return listener

    yield start
    for listener, thread in running:
        listener.stop.set()
        thread.join(10)


def publisher(server: Mosquitto, **auth: str) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
    if auth:
        client.username_pw_set(auth["username"], auth["password"])
    client.connect("127.0.0.1", server.port)
    client.loop_start()
    return client


def publish_all(client: mqtt.Client, messages: list[tuple[str, str | bytes]], qos: int = 1) -> None:
    infos = [client.publish(topic, payload, qos=qos) for topic, payload in messages]
    for info in infos:
        info.wait_for_publish(10)
        assert info.is_published()


def wait_until(check: Callable[[], bool], timeout: float = 15, message: Callable[[], str] = str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db.session.rollback()  # a fresh snapshot: the worker commits from its own connection
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for the worker {message()}")


def values(channel: ChannelKeys | int) -> dict[int, list[Any]]:
    """field number -> values in time order, as a user reading the channel sees them."""
    channel_id = channel if isinstance(channel, int) else channel.id
    db.session.rollback()
    rows = db.session.execute(
        select(Field.number, ReadingRecord.value, ReadingRecord.text)
        .join(ReadingRecord, ReadingRecord.field_id == Field.id)
        .where(Field.channel_id == channel_id)
        .order_by(ReadingRecord.ts)
    ).all()
    out: dict[int, list[Any]] = {}
    for number, value, text in rows:
        out.setdefault(number, []).append(text if value is None else value)
    return out


def entry_count(channel_id: int) -> int:
    db.session.rollback()
    return int(
        db.session.scalar(
            select(func.count()).select_from(EntryRecord).where(EntryRecord.channel_id == channel_id)
        )
    )


def test_every_topic_scheme_lands_in_the_right_fields(app: Flask, broker: Mosquitto, worker: Start) -> None:
    owner = make_user().user
    weather = make_channel(owner, "weather", ("temperature", "humidity", "pressure"))
    tasmota = make_channel(owner, "tasmota", ("temperature", "humidity"))
    manage.update_channel(tasmota.channel, mqtt_topic_prefix="tele/livingroom/")
    worker(broker, {"livingroom": TasmotaMap(tasmota.id, {"AM2301.Temperature": 1, "AM2301.Humidity": 2})})
    client = publisher(broker)
    w, key = weather.id, weather.write_key
    publish_all(
        client,
        [
            (f"channels/{w}/publish", f"api_key={key}&field1=21.5&field2=55&status=MQTTPUBLISH"
                                      "&created_at=2024-01-01T12:00:00Z"),
            (f"channels/{w}/publish/{key}", "field3=1013&created_at=2024-01-01T12:01:00Z"),
            (f"channels/{w}/publish/fields/field2/{key}", "56"),
            (f"fieldstation/{w}/entries", json.dumps({"api_key": key, "entries": [
                {"created_at": "2024-01-01T12:03:00Z", "fields": {"temperature": 22, "3": 1014}}]})),
            ("tele/livingroom/SENSOR", '{"Time": "2024-01-01T12:00:00", "AM2301": {"Temperature": 21.5,'
                                       ' "Humidity": 55.0}, "TempUnit": "C"}'),
        ],
    )  # fmt: skip
    wait_until(lambda: entry_count(w) == 4 and entry_count(tasmota.id) == 1)
    assert values(weather) == {1: [21.5, 22.0], 2: [55.0, 56.0], 3: [1013.0, 1014.0]}
    assert values(tasmota) == {1: [21.5], 2: [55.0]}
    db.session.rollback()
    first = db.session.scalar(
        select(EntryRecord).where(EntryRecord.channel_id == w).order_by(EntryRecord.ts).limit(1)
    )
    assert first is not None and first.status == "MQTTPUBLISH"
    assert first.ts == parse_time("2024-01-01T12:00:00Z")
    client.disconnect()


def test_refused_and_bad_messages_are_counted_and_never_stop_the_worker(
    app: Flask, broker: Mosquitto, worker: Start
) -> None:
    owner = make_user().user
    ours = make_channel(owner, "ours", ("t",))
    other = make_channel(owner, "other", ("t",))
    listener = worker(broker)
    client = publisher(broker)
    publish_all(
        client,
        [
            (f"channels/{ours.id}/publish", "field1=1"),  # no key, no trusted prefix
            (f"channels/{ours.id}/publish/{other.write_key}", "field1=2"),  # another channel's key
            (f"channels/{ours.id}/publish/AAAAAAAAAAAAAAAA", "field1=3"),  # unknown key
            (f"channels/{ours.id}/publish/{ours.write_key}", "field7=4"),  # no such field
            (f"channels/{ours.id}/publish/{ours.write_key}", b"\xff"),  # not UTF-8
            (f"fieldstation/{ours.id}/entries", "[[[["),  # not JSON
            ("tele/nobody/SENSOR", "{}"),  # unmapped device
            (f"channels/{ours.id}/publish/{ours.write_key}", "field1=5"),  # good
            (f"channels/{other.id}/publish/{other.write_key}", "field1=6"),  # good, another channel
        ],
    )
    wait_until(lambda: listener.stats.received == 9, message=lambda: str(listener.stats))
    wait_until(lambda: entry_count(ours.id) == 1 and entry_count(other.id) == 1)
    assert values(ours) == {1: [5.0]}
    assert values(other) == {1: [6.0]}
    assert (listener.stats.bad, listener.stats.refused, listener.stats.stored) == (3, 4, 2)
    assert listener.subscribed.is_set()
    client.disconnect()


def test_trusted_prefix_replaces_the_key(app: Flask, broker: Mosquitto, worker: Start) -> None:
    owner = make_user().user
    trusting = make_channel(owner, "trusting", ("t",))
    manage.update_channel(trusting.channel, mqtt_topic_prefix=f"channels/{trusting.id}/")
    other = make_channel(owner, "strict", ("t",))
    worker(broker)
    client = publisher(broker)
    publish_all(client, [(f"channels/{trusting.id}/publish/fields/field1", "7"),
                         (f"channels/{other.id}/publish/fields/field1", "8")])  # fmt: skip
    wait_until(lambda: entry_count(trusting.id) == 1)
    assert entry_count(other.id) == 0
    client.disconnect()


def test_password_protected_broker(app: Flask, locked_broker: Mosquitto, worker: Start) -> None:
    owner = make_user().user
    channel = make_channel(owner, "c", ("t",))
    worker(locked_broker)  # user and password come from the URL
    client = publisher(locked_broker, username="worker", password="s3cret pass")
    publish_all(client, [(f"channels/{channel.id}/publish/{channel.write_key}", "field1=3.5")])
    wait_until(lambda: entry_count(channel.id) == 1)
    client.disconnect()


def test_shared_subscription_splits_the_stream(app: Flask, broker: Mosquitto, worker: Start) -> None:
    owner = make_user().user
    channel = make_channel(owner, "shared", ("t",))
    group = f"fieldstation-{uuid.uuid4().hex[:6]}"
    first = worker(broker, shared_group=group)
    second = worker(broker, shared_group=group)
    client = publisher(broker)
    base = parse_time("2024-01-01T00:00:00Z") // 1_000_000
    topic = f"channels/{channel.id}/publish/{channel.write_key}"
    publish_all(client, [(topic, f"field1={i}&created_at={base + i}") for i in range(200)])
    wait_until(lambda: entry_count(channel.id) == 200)
    assert values(channel)[1] == [float(i) for i in range(200)]
    assert first.stats.received + second.stats.received == 200  # each message went to one worker
    assert first.stats.received > 0 and second.stats.received > 0
    client.disconnect()


def _worker_process(app: Flask, broker: Mosquitto, tmp_path: Path, client_id: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FIELDSTATION_ENV": "testing",
        "FIELDSTATION_DATABASE_URL": app.config["DATABASE_URL"],
        "FIELDSTATION_INSTANCE_PATH": str(tmp_path / "worker-instance"),
        "FIELDSTATION_MQTT_BATCH_SIZE": "100",
    }
    code = "from fieldstation.__main__ import main; main()"
    command = [
        sys.executable,
        "-c",
        code,
        "mqtt",
        broker.url,
        "--client-id",
        client_id,
        "--topic",
        "channels/+/publish/#",
    ]
    with open(tmp_path / "worker.log", "ab") as log:
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)


def test_killed_worker_loses_nothing_acknowledged_and_duplicates_nothing(
    app: Flask, broker: Mosquitto, tmp_path: Path
) -> None:
    owner = make_user().user
    channel = make_channel(owner, "stream", ("n",))
    total = 3000
    base = parse_time("2024-01-01T00:00:00Z") // 1_000_000
    topic = f"channels/{channel.id}/publish/{channel.write_key}"
    client_id = f"kill-{uuid.uuid4().hex[:8]}"
    process = _worker_process(app, broker, tmp_path, client_id)
    # The first run subscribes; from then on the broker keeps the session while the worker is dead.
    client = publisher(broker)
    published = threading.Event()

    def publish_slowly() -> None:
        for start in range(0, total, 100):
            publish_all(
                client, [(topic, f"field1={i}&created_at={base + i}") for i in range(start, start + 100)]
            )
            time.sleep(0.02)
        published.set()

    wait_until(lambda: _probe(client, channel, base - 1), timeout=30)  # worker is up and storing
    feeder = threading.Thread(target=publish_slowly)
    feeder.start()
    wait_until(lambda: entry_count(channel.id) >= 500, timeout=30)
    process.send_signal(signal.SIGKILL)
    process.wait()
    stored_at_kill = entry_count(channel.id)
    feeder.join(60)
    assert published.is_set()
    assert 0 < stored_at_kill < total  # killed mid-stream
    process = _worker_process(app, broker, tmp_path, client_id)
    try:
        wait_until(lambda: entry_count(channel.id) == total + 1, timeout=60)
        time.sleep(0.5)  # anything redelivered late would show up now
        numbers = values(channel)[1]
        assert numbers == [-1.0, *(float(i) for i in range(total))]  # every one, once, in order
        db.session.rollback()
        assert db.session.scalar(select(Channel.last_entry_id).where(Channel.id == channel.id)) == total + 1
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(10)
        client.disconnect()


def _probe(client: mqtt.Client, channel: ChannelKeys, second: int) -> bool:
    """Publish one marker reading until the worker has stored it."""
    if entry_count(channel.id):
        return True
    publish_all(
        client, [(f"channels/{channel.id}/publish/{channel.write_key}", f"field1=-1&created_at={second}")]
    )
    time.sleep(0.2)
    return entry_count(channel.id) > 0


def test_worker_reconnects_after_the_broker_restarts(app: Flask, tmp_path: Path, worker: Start) -> None:
    try:
        server = start_mosquitto()
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    channel = make_channel(make_user().user, "c", ("t",))
    try:
        listener = worker(server)
        server.stop()
        wait_until(lambda: not listener.connected.is_set())
        server = start_mosquitto(port=server.port)  # same address, empty broker
        assert listener.subscribed.wait(20), "the worker did not come back"
        client = publisher(server)
        publish_all(client, [(f"channels/{channel.id}/publish/{channel.write_key}", "field1=9")])
        wait_until(lambda: entry_count(channel.id) == 1)
        client.disconnect()
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("args", "config", "message"),
    [
        (["mqtt", "http://broker"], {}, "mqtt://"),
        (
            ["mqtt", "mqtt://127.0.0.1"],
            {"MQTT_TASMOTA": {"dev": {"channel": "x", "fields": {}}}},
            "MQTT_TASMOTA",
        ),
    ],
)
def test_mqtt_command_refuses_bad_settings_in_one_line(
    app: Flask, args: list[str], config: dict[str, Any], message: str
) -> None:
    app.config.update(config)
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_refused_login_is_retried_not_fatal(app: Flask, locked_broker: Mosquitto) -> None:
    url = f"mqtt://worker:wrong@127.0.0.1:{locked_broker.port}"
    listener = Listener(app, Settings(Broker.from_url(url), client_id=f"t-{uuid.uuid4().hex[:6]}"), {})
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    time.sleep(1.5)  # the first attempt and its retry are refused
    assert thread.is_alive() and not listener.connected.is_set()
    listener.stop.set()
    thread.join(10)
    assert not thread.is_alive()


def test_mqtts_with_a_ca_file(app: Flask, worker: Start) -> None:
    try:
        server = start_mosquitto(tls=True)
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    try:
        channel = make_channel(make_user().user, "c", ("t",))
        worker(server, ca_file=server.ca_file)
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:8]}")
        client.tls_set(ca_certs=server.ca_file)
        client.connect("127.0.0.1", server.port)
        client.loop_start()
        publish_all(client, [(f"channels/{channel.id}/publish/{channel.write_key}", "field1=4.5")])
        wait_until(lambda: entry_count(channel.id) == 1)
        assert values(channel) == {1: [4.5]}
        client.disconnect()
        client.loop_stop()
    finally:
        server.stop()


def test_a_poison_message_is_isolated(
    app: Flask, broker: Mosquitto, worker: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An unexpected error (a bug) while storing costs only the message that causes it."""
    from fieldstation import store

    real = store.write_many

    def write_many(batches: Any, **kwargs: Any) -> Any:
        if any(13.0 in entry.values.values() for batch in batches for entry in batch.entries):
            raise KeyError("unlucky")
        return real(batches, **kwargs)

    monkeypatch.setattr(store, "write_many", write_many)
    channel = make_channel(make_user().user, "c", ("t",))
    listener = worker(broker, batch_interval=0.5)
    client = publisher(broker)
    topic = f"channels/{channel.id}/publish/{channel.write_key}"
    publish_all(client, [(topic, f"field1={v}&created_at={1_700_000_000 + v}") for v in (12, 13, 14)])
    wait_until(lambda: listener.stats.received == 3 and entry_count(channel.id) == 2)
    assert values(channel) == {1: [12.0, 14.0]}
    assert listener.stats.bad == 1
    client.disconnect()


def test_database_outage_is_waited_out(
    app: Flask, broker: Mosquitto, worker: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the database is unreachable nothing is acknowledged or dropped; then it is stored."""
    from sqlalchemy.exc import OperationalError

    from fieldstation import store

    real, failures = store.write_many, [2]

    def write_many(batches: Any, **kwargs: Any) -> Any:
        if failures[0]:
            failures[0] -= 1
            raise OperationalError("INSERT", {}, Exception("server closed the connection"))
        return real(batches, **kwargs)

    monkeypatch.setattr(store, "write_many", write_many)
    channel = make_channel(make_user().user, "c", ("t",))
    listener = worker(broker)
    client = publisher(broker)
    publish_all(client, [(f"channels/{channel.id}/publish/{channel.write_key}", "field1=1")])
    wait_until(lambda: entry_count(channel.id) == 1)
    assert failures == [0] and listener.stats.bad == 0 and listener.stats.stored == 1
    client.disconnect()
