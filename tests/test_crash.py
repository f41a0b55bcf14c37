"""Workers killed in the middle of writes: nothing acknowledged is lost, no batch is half stored.

What a crash, the OOM killer or ``kill -9`` does to ``fieldstation serve``: the
master starts new workers, and the database must hold every write a client was
told had succeeded, each exactly once, and of every batch all points or none.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from fieldstation.extensions import db
from tests.factories import make_channel, make_user
from tests.liveserver import served

#: Points per line-protocol batch; batch ``b`` covers seconds [EPOCH + b * BATCH, EPOCH + (b + 1) * BATCH).
BATCH = 500
EPOCH = 1_600_000_000
US = 1_000_000
#: Single readings are stamped with the server's time, after this; batches lie before it.
STAMPED = (EPOCH + 10**8) * US


def workers(master: int) -> set[int]:
    """The uWSGI master's worker processes."""
    return {int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()}


class Load:
    """Clients writing single readings and batches until told to stop; what was acknowledged."""

    def __init__(self, url: str, key: str, channel: str, channel_id: int) -> None:
        self.url, self.key, self.channel, self.channel_id = url, key, channel, channel_id
        self.stop = threading.Event()
        self.singles: dict[int, float] = {}  # acknowledged entry id -> value sent
        self.batches: set[int] = set()  # acknowledged batch numbers
        self.refused: list[tuple[int, str]] = []  # answers neither a success nor a dropped connection
        self.threads = [threading.Thread(target=self.single, args=(n,)) for n in range(3)]
        self.threads += [threading.Thread(target=self.batch, args=(n,)) for n in range(2)]

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(60)

    def single(self, client: int) -> None:
        sent = 0
        while not self.stop.is_set():
            sent += 1
            value = float(client * 1_000_000 + sent)
            try:
                params = {"api_key": self.key, "field1": value}
                reply = requests.get(f"{self.url}/update", params=params, timeout=30)
            except requests.ConnectionError:
                continue  # killed before it answered: may or may not be stored
            if reply.status_code == 200 and reply.text not in ("", "0"):
                self.singles[int(reply.text)] = value
            else:
                self.refused.append((reply.status_code, reply.text))

    def batch(self, client: int) -> None:
        """Batches of BATCH points: line protocol from client 0, the JSON API from client 1."""
        number = client
        while not self.stop.is_set():
            first = EPOCH + number * BATCH
            try:
                if client == 0:
                    reply = requests.post(
                        f"{self.url}/write",
                        params={"db": self.channel, "precision": "s", "u": "device", "p": self.key},
                        data="\n".join(f"load v={number} {first + i}" for i in range(BATCH)),
                        timeout=30,
                    )
                else:
                    reply = requests.post(
                        f"{self.url}/api/v1/channels/{self.channel_id}/entries",
                        json=[{"time": first + i, "values": {"1": number}} for i in range(BATCH)],
                        headers={"Authorization": f"Bearer {self.key}"},
                        timeout=30,
                    )
            except requests.ConnectionError:
                number += 2
                continue
            if reply.status_code in (201, 204):
                self.batches.add(number)
            else:
                self.refused.append((reply.status_code, reply.text))
            number += 2

    def acknowledged(self) -> int:
        return len(self.singles) + len(self.batches)


def wait_for(condition: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_killed_workers_lose_nothing_acknowledged(app: Flask) -> None:
    channel = make_channel(make_user().user, "plant", fields=["power"])
    key = channel.write_key
    with served(app, "uwsgi", workers=2) as (url, proc), Load(url, key, "plant", channel.id) as load:
        killed: set[int] = set()
        for _ in range(2):  # twice: the second time, of workers that replaced killed ones
            before = load.acknowledged()
            wait_for(lambda before=before: load.acknowledged() > before + 20)  # writes are flowing
            victims = workers(proc.pid)
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            killed |= victims
            # The master replaced them.
            wait_for(lambda killed=killed: workers(proc.pid) and not workers(proc.pid) & killed)
        after_kills = load.acknowledged()
        wait_for(lambda: load.acknowledged() > after_kills + 20)  # and the new workers write
    assert load.refused == []

    db.session.rollback()
    stored = dict(
        db.session.execute(
            sa.text(
                "SELECT e.entry_id, r.value FROM entries e JOIN readings r ON r.ts = e.ts "
                "JOIN fields f ON f.id = r.field_id AND f.channel_id = e.channel_id "
                "WHERE e.channel_id = :c AND f.number = 1 AND e.ts >= :stamped"
            ),
            {"c": channel.id, "stamped": STAMPED},
        ).all()
    )
    lost = {entry: value for entry, value in load.singles.items() if stored.get(entry) != value}
    assert not lost, f"acknowledged single readings missing or changed: {sorted(lost.items())[:10]}"
    assert len(set(stored.values())) == len(stored), "a single reading was stored twice"

    per_batch = db.session.execute(
        sa.text(
            "SELECT (r.ts / :us - :epoch) / :size AS batch, count(*), min(r.value), max(r.value) "
            "FROM readings r JOIN fields f ON f.id = r.field_id "
            "WHERE f.channel_id = :c AND r.ts < :stamped GROUP BY (r.ts / :us - :epoch) / :size"
        ),
        {"us": US, "epoch": EPOCH, "size": BATCH, "c": channel.id, "stamped": STAMPED},
    ).all()
    assert {number: (count, low, high) for number, count, low, high in per_batch} == {
        number: (BATCH, float(number), float(number)) for number, *_ in per_batch
    }, "a batch was stored in part"
    stored_batches = {number for number, *_ in per_batch}
    lost_batches = sorted(load.batches - stored_batches)
    assert not lost_batches, f"acknowledged batches lost: {lost_batches}"
    assert load.singles and load.batches


@pytest.mark.parametrize("engine_name", ["sqlite"])
def test_stops_on_sigterm_while_replacing_killed_workers(app: Flask) -> None:
    """``systemctl stop`` right after a crash: the server exits, and leaves no worker behind.

    Workers still loading the app miss the master's signal; without a bound on
    how long the master waits for them (``--worker-reload-mercy``), it waited 60 s,
    and a master killed meanwhile left them running on their own (``--no-orphans``).
    """
    with served(app, "uwsgi", workers=2) as (_url, proc):
        first = workers(proc.pid)
        for pid in first:
            os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(workers(proc.pid) - first) == 2)
        replacements = workers(proc.pid)
        proc.terminate()
        proc.wait(30)
    wait_for(lambda: not any(Path(f"/proc/{pid}").exists() for pid in replacements), timeout=10)
