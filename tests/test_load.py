"""Every way in and out at once, from many clients, against the server as users run it.

Each request is simple; the point is that they overlap: writes to the same
timestamps from different APIs, new line-protocol series created by several
writers at once, charts refreshing rollups while writes mark them stale. This
found two races that the single-request tests could not (a field created by two
writers; two charts rebuilding one field's rollups), each now also tested
deterministically next to its fix.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable

import requests
from flask import Flask

from fieldstation import rollups
from fieldstation.buckets import Bucket
from tests.factories import make_channel, make_user
from tests.liveserver import uwsgi_server
from tests.test_query import raw_buckets

T0 = 1_700_000_000  # seconds; the timestamped writes land in [T0, T0 + 200)
US = 1_000_000
DURATION = 6.0


def requests_of(url: str, cid: int, key: str, rnd: random.Random) -> list[Callable[[], requests.Response]]:
    """One request of each kind, with random values and timestamps that collide across kinds."""
    t = T0 + rnd.randrange(200)
    bearer = {"Authorization": f"Bearer {key}"}
    series = [f"m{rnd.randrange(12)},dev=d{rnd.randrange(3)}" for _ in range(3)]
    lines = "\n".join(f"{rnd.choice(series)} v={rnd.random()} {t + i}" for i in range(rnd.randrange(1, 40)))
    entries = [{"time": t + i, "values": {"temperature": rnd.random(), "2": rnd.random()}} for i in range(20)]
    stamp = f"2023-11-14T22:1{rnd.randrange(4)}:{rnd.randrange(60):02d}Z"  # T0 is 22:13:20Z
    csv = "|".join(f"{rnd.randrange(100)},{rnd.random()},{rnd.random()}" for _ in range(5))
    window = {"api_key": key, "start": str(T0 - 60), "end": str(T0 + 300)}
    influxql = f"SELECT mean(v) FROM m1 WHERE time >= {T0}s AND time < {T0 + 300}s GROUP BY time(1m)"
    return [
        lambda: requests.get(
            f"{url}/update", params={"api_key": key, "field1": rnd.random(), "field2": "on"}
        ),
        lambda: requests.get(f"{url}/update/API_key={key}/mac=6c:rf:7f:2b:0e:g8/field=1/data={rnd.random()}"),
        lambda: requests.post(f"{url}/write", params={"db": "load", "precision": "s", "p": key}, data=lines),
        lambda: requests.post(f"{url}/api/v1/channels/{cid}/entries", json=entries, headers=bearer),
        lambda: requests.post(
            f"{url}/channels/{cid}/bulk_update.json",
            json={"write_api_key": key, "updates": [{"created_at": stamp, "field1": rnd.random()}]},
        ),
        lambda: requests.post(
            f"{url}/channels/{cid}/bulk_update.csv",
            data={"write_api_key": key, "time_format": "relative", "updates": csv},
        ),
        lambda: requests.get(
            f"{url}/api/v1/channels/{cid}/buckets",
            params={**window, "fields": "1", "every": "1m", "fn": "avg,max"},
        ),
        lambda: requests.get(f"{url}/channels/{cid}/feeds.json", params={**window, "results": "500"}),
        lambda: requests.get(f"{url}/query", params={"db": "load", "q": influxql, "p": key}),
        lambda: requests.get(f"{url}/api/v1/channels/{cid}/export.csv", params=window),
    ]


#: What each kind answers when all is well (same order as requests_of).
EXPECTED = [{200}, {200}, {204}, {201}, {202}, {202}, {200}, {200}, {200}, {200}]


def test_every_way_in_and_out_at_once(app: Flask) -> None:
    channel = make_channel(make_user().user, "load", fields=["temperature", "humidity"])
    cid, key = channel.id, channel.write_key
    answers: Counter[tuple[int, int]] = Counter()
    failures: list[tuple[int, int, str]] = []

    with uwsgi_server(app, workers=2) as url:

        def client(seed: int) -> None:
            rnd = random.Random(seed)
            deadline = time.monotonic() + DURATION
            while time.monotonic() < deadline:
                kind = rnd.randrange(len(EXPECTED))
                reply = requests_of(url, cid, key, rnd)[kind]()
                answers[kind, reply.status_code] += 1
                if reply.status_code not in EXPECTED[kind]:
                    failures.append((kind, reply.status_code, reply.text[:300]))

        threads = [threading.Thread(target=client, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DURATION + 60)

    assert not failures, failures[:5]
    assert all(answers[kind, status] for kind, codes in enumerate(EXPECTED) for status in codes), answers
    # The rollups the charts rebuilt while writes went on agree with the raw readings.
    field = channel.channel.fields[0].id
    start, end = (T0 - 3600) * US, (T0 + 3600) * US
    from_rollups = rollups.buckets(field, start, end, 60 * US)
    assert from_rollups and [summary(b) for b in from_rollups] == [
        summary(b) for b in raw_buckets(field, start, end, 60 * US)
    ]


def summary(bucket: Bucket) -> tuple[object, ...]:
    """A bucket with its sums rounded: minute sums added in another order may differ in the last bit."""
    return (
        bucket.start,
        bucket.count,
        bucket.min,
        bucket.max,
        bucket.first,
        bucket.last,
        round(bucket.sum or 0, 9),
    )
