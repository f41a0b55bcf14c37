"""MQTT ingest speed: messages/s from Mosquitto into the store, against a bare paho subscriber.

For each database (SQLite, a throwaway PostgreSQL) and QoS (0, 1), a backlog of N ThingSpeak
messages (``channels/<id>/publish/<key>``, ``field1=…&created_at=…``) is queued in a real
Mosquitto for a subscriber's persistent session; then the subscriber connects and the clock
runs until every row is committed. Draining a backlog measures the subscriber, not the
publisher. Two subscribers drain the same backlog shape into the same database:

- ``fieldstation``: the real worker (parse, key check, one grouped transaction through
  ``store.write_many``, QoS 1 acknowledged after the commit);
- ``bare``: paho-mqtt with automatic acknowledgement that splits the payload and inserts the
  same entry and reading rows with the driver's ``executemany`` every 1,000 rows or 0.2 s.

Prints messages/s (median of the repeats) and the ratio fieldstation / bare. Run from the
repository root: ``.venv/bin/python bench/mqtt.py`` (about a minute) or ``--long``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlite3  # noqa: E402

import paho.mqtt.client as mqtt  # noqa: E402
import psycopg  # noqa: E402
from flask import Flask  # noqa: E402
from paho.mqtt.enums import CallbackAPIVersion  # noqa: E402
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402

from fieldstation import create_app, manage  # noqa: E402
from fieldstation.broker import Broker  # noqa: E402
from fieldstation.extensions import db  # noqa: E402
from fieldstation.models import Field, KeyKind  # noqa: E402
from fieldstation.mqtt.listener import Listener, Settings  # noqa: E402
from tests.pgserver import BENCH, start_cluster  # noqa: E402
from tests.servers import Mosquitto, start_mosquitto  # noqa: E402

BATCH = 1000
INTERVAL = 0.2
BASE_TS = 1_700_000_000


def make_app(url: str, instance: str) -> Flask:
    os.environ["FIELDSTATION_INSTANCE_PATH"] = instance
    app = create_app(
        {"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": "bench-secret-not-for-production-0123456789"}
    )
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    return app


def new_channel(app: Flask) -> tuple[int, int, str]:
    """A fresh channel: (channel id, field1's id, write key)."""
    with app.app_context():
        name = uuid.uuid4().hex[:8]
        user = manage.create_user(f"u{name}", "benchmark-password")
        channel = manage.create_channel(user, f"c{name}", fields=["value"])
        _, key = manage.create_key(user, KeyKind.WRITE, channel=channel)
        field_id = db.session.scalar(db.select(Field.id).where(Field.channel_id == channel.id))
        assert field_id is not None
        return channel.id, field_id, key


def connect_properties() -> Properties:
    props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
    props.SessionExpiryInterval = 600
    return props


def make_session(broker: Mosquitto, client_id: str, topic: str, qos: int) -> None:
    """Create the subscriber's persistent session so the broker queues the backlog for it."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    client.on_subscribe = lambda *args: subscribed.set()
    client.connect("127.0.0.1", broker.port, clean_start=True, properties=connect_properties())
    client.loop_start()
    client.subscribe(topic, qos)
    assert subscribed.wait(10)
    client.disconnect()
    client.loop_stop()


def publish_backlog(broker: Mosquitto, topic: str, n: int, qos: int) -> None:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"pub-{uuid.uuid4().hex[:6]}")
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    infos = [
        client.publish(topic, f"field1={i % 1000}.5&created_at={BASE_TS + i}", qos=qos) for i in range(n)
    ]
    for info in infos:
        info.wait_for_publish(60)
    client.disconnect()
    client.loop_stop()
    time.sleep(0.2)  # let the broker queue the tail


def run_fieldstation(app: Flask, broker: Mosquitto, n: int, qos: int) -> float:
    channel_id, _, key = new_channel(app)
    topic = f"channels/{channel_id}/publish/{key}"
    client_id = f"fs-{uuid.uuid4().hex[:6]}"
    make_session(broker, client_id, "channels/+/publish/#", qos)
    publish_backlog(broker, topic, n, qos)
    settings = Settings(
        Broker.from_url(broker.url),
        topics=["channels/+/publish/#"],
        client_id=client_id,
        qos=qos,
        batch_size=BATCH,
        batch_interval=INTERVAL,
        session_expiry=600,
    )
    listener = Listener(app, settings, {})
    start = time.perf_counter()
    thread = threading.Thread(target=listener.run, daemon=True)
    thread.start()
    elapsed = wait_for(lambda: listener.stats.points >= n, start)
    listener.stop.set()
    thread.join(10)
    if listener.stats.bad or listener.stats.refused:
        print(f"  warning: {listener.stats}")
    return n / elapsed


def run_bare(app: Flask, broker: Mosquitto, n: int, qos: int) -> float:
    channel_id, field_id, key = new_channel(app)
    topic = f"channels/{channel_id}/publish/{key}"
    client_id = f"bare-{uuid.uuid4().hex[:6]}"
    make_session(broker, client_id, "channels/+/publish/#", qos)
    publish_backlog(broker, topic, n, qos)
    url = app.config["DATABASE_URL"]
    conn: Any
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        mark = "?"
    else:
        conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"))
        mark = "%s"
    insert_entry = f"INSERT INTO entries (channel_id, ts, entry_id) VALUES ({mark}, {mark}, {mark})"
    insert_reading = f"INSERT INTO readings (field_id, ts, value) VALUES ({mark}, {mark}, {mark})"
    pending: list[tuple[int, float]] = []
    lock = threading.Lock()
    stored = [0]

    def on_message(_c: Any, _u: Any, message: mqtt.MQTTMessage) -> None:
        value, created = message.payload.split(b"&")
        with lock:
            pending.append((int(created[11:]) * 1_000_000, float(value[7:])))

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.on_message = on_message
    start = time.perf_counter()
    client.connect("127.0.0.1", broker.port, clean_start=False, properties=connect_properties())
    client.loop_start()
    next_id = 1
    last_flush = time.perf_counter()
    while stored[0] < n:
        time.sleep(0.001)
        if len(pending) < BATCH and time.perf_counter() - last_flush < INTERVAL:
            continue
        with lock:
            rows, pending[:] = list(pending), []
        last_flush = time.perf_counter()
        if not rows:
            continue
        cur = conn.cursor()
        cur.executemany(insert_entry, [(channel_id, ts, next_id + i) for i, (ts, _) in enumerate(rows)])
        cur.executemany(insert_reading, [(field_id, ts, value) for ts, value in rows])
        conn.commit()
        next_id += len(rows)
        stored[0] += len(rows)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    conn.close()
    return n / elapsed


def wait_for(done: Callable[[], bool], start: float, timeout: float = 300) -> float:
    while not done():
        if time.perf_counter() - start > timeout:
            raise RuntimeError("timed out")
        time.sleep(0.002)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--long", action="store_true", help="100,000 messages, 5 repeats")
    parser.add_argument("-n", type=int, help="messages per run")
    parser.add_argument("--repeats", type=int)
    parser.add_argument("--engines", default="sqlite,postgres")
    args = parser.parse_args()
    n = args.n or (100_000 if args.long else 15_000)
    repeats = args.repeats or (5 if args.long else 3)
    broker = start_mosquitto(extra=["queue_qos0_messages true"])
    cluster = None
    tmp = tempfile.mkdtemp(prefix="fieldstation-bench-")
    try:
        print(f"{n} messages per run, median of {repeats}; backlog drained from Mosquitto")
        print(f"{'database':<10} {'qos':>3} {'bare msg/s':>11} {'fieldstation':>13} {'ratio':>6}")
        for engine in args.engines.split(","):
            if engine == "sqlite":
                url = f"sqlite:///{tmp}/bench.db"
            else:
                cluster = start_cluster(BENCH)
                url = cluster.url
            app = make_app(url, f"{tmp}/instance")
            for qos in (0, 1):
                bare, ours = [], []
                for _ in range(repeats):  # interleaved, so drift hits both alike
                    bare.append(run_bare(app, broker, n, qos))
                    ours.append(run_fieldstation(app, broker, n, qos))
                b, o = statistics.median(bare), statistics.median(ours)
                print(f"{engine:<10} {qos:>3} {b:>11,.0f} {o:>13,.0f} {o / b:>6.2f}", flush=True)
            with app.app_context():
                db.engine.dispose()
    finally:
        broker.stop()
        if cluster is not None:
            cluster.stop()


if __name__ == "__main__":
    main()
