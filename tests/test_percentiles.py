"""Medians and percentiles in the native buckets API (issue 20, item 3), on both engines."""

from __future__ import annotations

import datetime as dt
import itertools
import math
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldstation import params, query, store
from fieldstation.errors import BadRequest
from fieldstation.extensions import db
from fieldstation.points import Batch, Entry
from fieldstation.timeunits import HOUR, MINUTE, SECOND
from tests.conftest import truncate_all
from tests.factories import ChannelKeys, make_channel, make_user

T0 = 1_780_000_000 * SECOND // HOUR * HOUR


def plain_percentile(values: list[float], percent: float) -> float:
    """Linear between the nearest ranks, written out: rank (n - 1) * p / 100 counted from 0."""
    ordered = sorted(values)
    rank = (len(ordered) - 1) * (percent / 100)
    low = math.floor(rank)
    if rank == low:
        return ordered[low]
    share = rank - low
    return ordered[low] * (1 - share) + ordered[low + 1] * share


def buckets(client: FlaskClient, channel: ChannelKeys, fn: str, **args: Any) -> list[dict[str, Any]]:
    response = client.get(
        f"/api/v1/channels/{channel.id}/buckets",
        query_string={"api_key": channel.read_key, "fields": "1", "fn": fn, "every": "1h"}
        | {"start": str(T0 // SECOND), "end": str((T0 + 3 * HOUR) // SECOND)}
        | args,
    )
    assert response.status_code == 200, response.get_json()
    found: list[dict[str, Any]] = response.get_json()["series"][0]["buckets"]
    return found


def test_median_and_percentiles_per_hour(client: FlaskClient, channel: ChannelKeys) -> None:
    # hour 0: 1..10 (even count); hour 2: one reading; hour 1: none; a text reading counts nowhere
    entries = [Entry({1: float(v)}, ts=T0 + v * MINUTE) for v in (7, 1, 10, 3, 2, 9, 4, 8, 6, 5)]
    entries += [Entry({1: 42.0}, ts=T0 + 2 * HOUR), Entry({1: "n/a"}, ts=T0 + 2 * HOUR + MINUTE)]
    store.write(Batch(channel.id, entries))
    got = buckets(client, channel, "median,p0,p25,p95,p100,p99.5,avg")
    assert [b["ts"] for b in got] == [T0, T0 + 2 * HOUR]
    first, last = got
    assert first["median"] == 5.5 and first["p0"] == 1.0 and first["p100"] == 10.0
    assert first["p25"] == pytest.approx(3.25) and first["p95"] == pytest.approx(9.55)
    assert first["p99.5"] == pytest.approx(9.955) and first["avg"] == 5.5
    assert {k: last[k] for k in ("median", "p0", "p95", "p100")} == dict.fromkeys(
        ("median", "p0", "p95", "p100"), 42.0
    )
    alone = buckets(client, channel, "p95")  # without the rollups' aggregates
    assert [(b["ts"], b["p95"]) for b in alone] == [(T0, pytest.approx(9.55)), (T0 + 2 * HOUR, 42.0)]


def test_thingspeak_median_and_the_native_median_agree(client: FlaskClient, channel: ChannelKeys) -> None:
    """One home for the median rule: ThingSpeak's median= and fn=median give the same numbers."""
    store.write(Batch(channel.id, [Entry({1: float((i * 37) % 11)}, ts=T0 + i * MINUTE) for i in range(120)]))
    native = buckets(client, channel, "median", every="1h")
    thingspeak = client.get(
        f"/channels/{channel.id}/fields/1.json",
        query_string={"api_key": channel.read_key, "median": "60", "start": "2026-05-28 20:00:00",
                      "end": "2026-05-28 23:00:00", "timezone": "Etc/UTC"},
    )  # fmt: skip
    assert thingspeak.status_code == 200
    medians = [float(f["field1"]) for f in thingspeak.get_json()["feeds"] if f["field1"] is not None]
    assert medians == [b["median"] for b in native] and len(medians) == 2


@pytest.mark.parametrize("fn", ["p101", "p", "p-5", "p50x", "percentile", "p1.2345", "p1e2"])
def test_bad_percentiles_are_400(client: FlaskClient, channel: ChannelKeys, fn: str) -> None:
    response = client.get(
        f"/api/v1/channels/{channel.id}/buckets", query_string={"api_key": channel.read_key, "fn": fn}
    )
    assert response.status_code == 400 and "pN" in response.get_json()["error"]["message"]


def test_at_most_ten_percentiles_a_request(client: FlaskClient, channel: ChannelKeys) -> None:
    ten = ",".join(f"p{n}" for n in range(10, 101, 10))
    assert len(buckets(client, channel, ten)) == 0  # no readings yet: no buckets, but a 200
    response = client.get(
        f"/api/v1/channels/{channel.id}/buckets",
        query_string={"api_key": channel.read_key, "fn": ten + ",p1,p10.0"},  # p10.0 is p10 again
    )
    assert response.status_code == 400 and "at most 10" in response.get_json()["error"]["message"]


@given(st.text(max_size=30))
def test_parse_functions_refuses_cleanly_or_names_known_functions(raw: str) -> None:
    try:
        names = params.parse_functions(raw)
    except BadRequest:
        return
    for name in names:
        assert name in (*params.FUNCTIONS, *params.TOTALS, "median") or params.percentile_of(name) is not None


_EXAMPLES = itertools.count()
values_strategy = st.lists(
    st.one_of(
        st.integers(-50, 50).map(float), st.floats(-1e300, 1e300, allow_nan=False, allow_infinity=False)
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    hours=st.lists(values_strategy, min_size=1, max_size=3),
    percent=st.one_of(st.sampled_from([0.0, 50.0, 100.0, 95.0, 99.9]), st.integers(0, 100).map(float)),
)
def test_percentiles_agree_with_plain_python(app: Flask, hours: list[list[float]], percent: float) -> None:
    """Any values, duplicates included, in up to three hours; p50 is the median bit for bit."""
    db.session.remove()
    truncate_all()
    keys = make_channel(make_user(f"p{next(_EXAMPLES)}").user)
    entries = [
        Entry({1: value}, ts=T0 + h * HOUR + i * SECOND)
        for h, values in enumerate(hours)
        for i, value in enumerate(values)
    ]
    store.write(Batch(keys.id, entries))
    field = query.field_of(keys.id, 1)
    assert field is not None
    got = query.percentiles(field.id, T0, T0 + 3 * HOUR, HOUR, percent)
    expected = [(T0 + h * HOUR, plain_percentile(values, percent)) for h, values in enumerate(hours)]
    assert [ts for ts, _ in got] == [ts for ts, _ in expected]
    for (_, value), (_, want), values in zip(got, expected, hours, strict=True):
        assert min(values) <= value <= max(values)
        assert value == pytest.approx(want, rel=1e-12, abs=1e-300)
    medians = query.medians(field.id, T0, T0 + 3 * HOUR, HOUR)
    assert query.percentiles(field.id, T0, T0 + 3 * HOUR, HOUR, 50.0) == medians


def test_chart_hover_gives_each_bucket_median_in_short_windows(
    app: Flask, channel: ChannelKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The line chart's hover data: avg, low, high and the median (query.medians) per bucket."""
    import html
    import json
    import re

    from fieldstation.dashboard import plots
    from fieldstation.dashboard.ranges import Window

    # a skewed hour: nine readings of 1 and one of 100 (avg 10.9, median 1)
    store.write(
        Batch(channel.id, [Entry({1: 100.0 if i == 9 else 1.0}, ts=T0 + i * MINUTE) for i in range(10)])
    )
    field = query.field_of(channel.id, 1)
    assert field is not None
    win = Window(T0 - 15 * 24 * HOUR, T0 + 15 * 24 * HOUR, None)  # 30 days: the hour is in one bucket

    def hover_points(svg: str) -> list[list[float]]:
        found = re.search(r'data-hover="([^"]+)"', svg)
        assert found is not None
        points: list[list[float]] = json.loads(html.unescape(found.group(1)))["series"][0]["points"]
        return points

    points = hover_points(plots.field_chart(field, win, dt.UTC, 240))
    assert [p[2:] for p in points] == [[10.9, 1.0, 100.0, 1.0]]
    monkeypatch.setattr(plots, "MEDIAN_READINGS", 9)  # a longer window than that: no medians
    assert [p[2:] for p in hover_points(plots.field_chart(field, win, dt.UTC, 240))] == [[10.9, 1.0, 100.0]]
