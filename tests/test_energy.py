"""Energy of power fields and increases of counters: the native buckets API, on both engines."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections import defaultdict
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldstation import manage, query, store
from fieldstation.buckets import bucket_starts
from fieldstation.energy import totals
from fieldstation.extensions import db
from fieldstation.points import Batch, Entry, number_text
from fieldstation.timeunits import DAY, HOUR, MINUTE, SECOND, datetime_to_us
from tests.conftest import truncate_all
from tests.factories import ChannelKeys, make_channel, make_user

DAY0 = datetime_to_us(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))


def power_field(channel: ChannelKeys, unit: str = "W", kind: str = "power", max_gap_s: int = 3600) -> int:
    field = manage.get_field(channel.channel, 1)
    manage.update_field(field, unit=unit, kind=kind, max_gap_s=max_gap_s)
    return field.id


def write(channel: ChannelKeys, readings: list[tuple[int, float]]) -> None:
    store.write(Batch(channel.id, [Entry({1: value}, ts=ts) for ts, value in readings]))


def get_buckets(client: FlaskClient, channel: ChannelKeys, **args: Any) -> dict[str, Any]:
    response = client.get(
        f"/api/v1/channels/{channel.id}/buckets",
        query_string={"api_key": channel.read_key, "fields": "1"} | args,
    )
    assert response.status_code == 200, response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


def ninety_minutes_at_1000_w(start: int) -> list[tuple[int, float]]:
    """1,000 W every minute for exactly 90 minutes, then 0."""
    return [(start + i * MINUTE, 1000.0) for i in range(90)] + [(start + 90 * MINUTE, 0.0)]


def test_1000_w_for_90_minutes_is_1500_wh(channel: ChannelKeys, client: FlaskClient) -> None:
    power_field(channel)
    write(channel, ninety_minutes_at_1000_w(DAY0 + 8 * HOUR))
    body = get_buckets(
        client,
        channel,
        start=str(DAY0 // SECOND),
        end=str((DAY0 + DAY) // SECOND),
        every="1d",
        fn="energy,avg",
    )
    series = body["series"][0]
    assert series["units"] == {"energy": "Wh"}
    assert [(b["ts"], b["energy"]) for b in series["buckets"]] == [(DAY0, pytest.approx(1500.0))]
    hourly = get_buckets(
        client, channel, start=str(DAY0 // SECOND), end=str((DAY0 + DAY) // SECOND), every="1h", fn="energy"
    )
    assert [(b["ts"] - DAY0) // HOUR for b in hourly["series"][0]["buckets"]] == [8, 9]
    assert [b["energy"] for b in hourly["series"][0]["buckets"]] == [
        pytest.approx(1000.0),
        pytest.approx(500.0),
    ]


def test_kw_field_reports_kwh(channel: ChannelKeys, client: FlaskClient) -> None:
    power_field(channel, unit="kW")
    write(channel, [(ts, v / 1000) for ts, v in ninety_minutes_at_1000_w(DAY0 + 23 * HOUR)])
    body = get_buckets(
        client,
        channel,
        start=str(DAY0 // SECOND),
        end=str((DAY0 + 2 * DAY) // SECOND),
        every="1d",
        fn="energy",
    )
    series = body["series"][0]
    assert series["units"] == {"energy": "kWh"}
    # The hour before midnight counts on the first day, the half hour after on the second.
    assert [b["energy"] for b in series["buckets"]] == [pytest.approx(1.0), pytest.approx(0.5)]


def test_a_gap_longer_than_max_gap_counts_no_energy(channel: ChannelKeys) -> None:
    fid = power_field(channel, max_gap_s=600)
    write(channel, [(DAY0, 600.0), (DAY0 + 10 * MINUTE, 600.0), (DAY0 + 40 * MINUTE, 0.0)])
    # 600 W for 10 minutes = 100 Wh; the next 30 minutes exceed the 10-minute gap.
    assert [t.energy for t in totals(fid, DAY0, DAY0 + DAY, DAY)] == [pytest.approx(100.0)]
    manage.update_field(manage.get_field(channel.channel, 1), max_gap_s=3600)  # rollups rebuilt
    assert [t.energy for t in totals(fid, DAY0, DAY0 + DAY, DAY)] == [pytest.approx(400.0)]


def test_daily_energy_follows_local_days_across_dst(channel: ChannelKeys, client: FlaskClient) -> None:
    """100 W throughout: 2.4 kWh a day, 2.3 kWh on the 23-hour day of the spring change."""
    power_field(channel)
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime_to_us(dt.datetime(2026, 3, 28, tzinfo=berlin))
    last = datetime_to_us(dt.datetime(2026, 3, 31, tzinfo=berlin))
    write(channel, [(ts, 100.0) for ts in range(first, last + 1, 15 * MINUTE)])
    body = get_buckets(
        client,
        channel,
        start="2026-03-28T00:00:00",
        end="2026-03-31T00:00:00",
        every="1d",
        tz="Europe/Berlin",
        fn="energy",
    )
    got = [(b["time"][:10], b["energy"]) for b in body["series"][0]["buckets"]]
    assert got == [
        ("2026-03-28", pytest.approx(2400.0)),
        ("2026-03-29", pytest.approx(2300.0)),
        ("2026-03-30", pytest.approx(2400.0)),
    ]


def test_counter_reset_gives_the_true_increase(channel: ChannelKeys, client: FlaskClient) -> None:
    power_field(channel, unit="l", kind="counter")
    values = [100.0, 150.0, 200.0, 10.0, 30.0]  # reset to 0 after 200; 10 l were counted since
    write(channel, [(DAY0 + i * HOUR, v) for i, v in enumerate(values)])
    body = get_buckets(
        client, channel, start=str(DAY0 // SECOND), end=str((DAY0 + DAY) // SECOND), every="1d", fn="increase"
    )
    series = body["series"][0]
    assert series["units"] == {"increase": "l"}
    assert [b["increase"] for b in series["buckets"]] == [pytest.approx(50 + 50 + 10 + 20)]


def test_unknown_function_is_refused(channel: ChannelKeys, client: FlaskClient) -> None:
    response = client.get(
        f"/api/v1/channels/{channel.id}/buckets", query_string={"api_key": channel.read_key, "fn": "integral"}
    )
    assert response.status_code == 400
    assert "energy" in response.get_json()["error"]["message"]


def test_field_kind_and_gap_are_checked(channel: ChannelKeys, client: FlaskClient) -> None:
    field = manage.get_field(channel.channel, 1)
    with pytest.raises(Exception, match="kind must be one of"):
        manage.update_field(field, kind="voltage")
    with pytest.raises(Exception, match="max_gap_s"):
        manage.update_field(field, max_gap_s=0)


# -- property: the same rules in plain Python ------------------------------------------------


def plain_totals(
    readings: dict[int, float], start: int, end: int, every: int, tz: str | None, gap: int
) -> dict[int, tuple[int, float, float]]:
    """Energy (value-hours) and increase per bucket start, computed reading by reading."""
    edges = [*bucket_starts(start, end, every, tz=tz), end]
    bounds = [
        (max(a, start), min(b, end), a) for a, b in itertools.pairwise(edges) if min(b, end) > max(a, start)
    ]

    def bucket_of(ts: int) -> int:
        return next(key for lo, hi, key in bounds if lo <= ts < hi)

    count: dict[int, int] = defaultdict(int)
    area: dict[int, float] = defaultdict(float)
    rise: dict[int, float] = defaultdict(float)
    points = sorted(readings.items())
    for ts, _ in points:
        if start <= ts < end:
            count[bucket_of(ts)] += 1
    for (t0, v0), (t1, v1) in itertools.pairwise(points):
        if start <= t1 < end:
            rise[bucket_of(t1)] += v1 - v0 if v1 >= v0 else v1
        if t1 - t0 <= gap:
            for lo, hi, key in bounds:
                overlap = min(hi, t1) - max(lo, t0)
                if overlap > 0:
                    area[key] += v0 * overlap / HOUR
    return {k: (count[k], area[k], rise[k]) for k in sorted(count.keys() | area.keys())}


_EXAMPLES = itertools.count()
#: The day before a DST change: America's spring and autumn, Europe's spring and autumn (2026).
DST_CHANGES = [dt.date(2026, 3, 7), dt.date(2026, 3, 28), dt.date(2026, 10, 24), dt.date(2026, 10, 31)]
readings_strategy = st.dictionaries(
    st.integers(min_value=0, max_value=3 * 24 * 12).map(lambda q: q * 5 * MINUTE)
    | st.integers(min_value=0, max_value=3 * DAY // SECOND).map(lambda s: s * SECOND),
    st.integers(min_value=0, max_value=5000).map(float),
    min_size=1,
    max_size=120,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    first=readings_strategy,
    late=readings_strategy,
    every=st.sampled_from([MINUTE, 15 * MINUTE, HOUR, DAY, 2 * DAY]),
    tz=st.sampled_from([None, "Europe/Berlin", "America/St_Johns", "Asia/Tokyo"]),
    day=st.sampled_from(
        [dt.date(2026, 3, 7), dt.date(2026, 3, 28), dt.date(2026, 10, 24), dt.date(2026, 10, 31)]
    ),
    gap_s=st.sampled_from([300, 3600, 6 * 3600]),
    edges=st.tuples(st.integers(-6 * HOUR, 6 * HOUR), st.integers(-6 * HOUR, 6 * HOUR)),
)
def test_totals_agree_with_plain_python(
    app: Flask,
    first: dict[int, float],
    late: dict[int, float],
    every: int,
    tz: str | None,
    gap_s: int,
    edges: tuple[int, int],
    day: dt.date,
) -> None:
    """Readings with gaps and resets, a read (rollups built), late readings, another read.

    The days hold DST changes in Europe (spring, autumn) and America (St. John's: half-hour
    offsets); local days are read from day slots cut at local midnight (Tokyo's on the other
    side of the UTC day than Berlin's).
    """
    db.session.remove()  # the last example's reads end their transaction before the tables empty
    truncate_all()
    keys = make_channel(make_user(f"e{next(_EXAMPLES)}").user)
    fid = power_field(keys, max_gap_s=gap_s)
    base = datetime_to_us(dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC))
    start, end = base + edges[0], base + 3 * DAY + edges[1]
    write(keys, [(base + ts, v) for ts, v in first.items()])
    expected = plain_totals({base + t: v for t, v in first.items()}, start, end, every, tz, gap_s * SECOND)
    assert _as_dict(totals(fid, start, end, every, tz=tz)) == _approx(expected)
    write(keys, [(base + ts, v) for ts, v in late.items()])  # late data: overwrites and fills in
    merged = {base + t: v for t, v in (first | late).items()}
    expected = plain_totals(merged, start, end, every, tz, gap_s * SECOND)
    assert _as_dict(totals(fid, start, end, every, tz=tz)) == _approx(expected)
    assert query.field_of(keys.id, 1) is not None


def _as_dict(rows: list[Any]) -> dict[int, tuple[int, float, float]]:
    return {t.start: (t.count, t.energy, t.increase) for t in rows}


def _approx(expected: dict[int, tuple[int, float, float]]) -> dict[int, Any]:
    return {
        k: (n, pytest.approx(e, rel=1e-9, abs=1e-6), pytest.approx(r, rel=1e-9, abs=1e-6))
        for k, (n, e, r) in expected.items()
    }


# -- dashboard: bars, today so far, this month -------------------------------------------------


def test_the_chart_bar_and_the_channel_page_show_1500_wh(
    app: Flask, channel: ChannelKeys, client: FlaskClient
) -> None:
    from fieldstation.dashboard import plots

    power_field(channel)
    write(channel, ninety_minutes_at_1000_w(DAY0 + 8 * HOUR))
    week = {"start": str(DAY0 - 3 * DAY), "end": str(DAY0 + 4 * DAY), "api_key": channel.read_key}
    embed = client.get(f"/channels/{channel.id}/charts/1", query_string=week | {"type": "bars"})
    assert embed.status_code == 200
    bars = re.findall(r'<rect class="bar"[^>]*data-value="([^"]+)"><title>([^<]+)</title>', embed.text)
    assert bars == [("1500.0", "2026-06-01 00:00: 1500 Wh")]
    line = client.get(f"/channels/{channel.id}/charts/1", query_string=week)  # the plain chart stays a line
    assert 'class="bar"' not in line.text and "<polyline" in line.text
    page = client.get(f"/dashboard/channels/{channel.id}", query_string=week)
    assert page.status_code == 200
    assert re.search(r'id="b1">.*data-value="1500.0"', page.text, re.S)
    # today so far and this month, as the page and the channel list show them
    field = manage.get_field(channel.channel, 1)
    evening = DAY0 + 20 * HOUR
    found = plots.so_far(field, dt.UTC, now=evening)
    assert found == plots.SoFar(pytest.approx(1500.0), pytest.approx(1500.0), "Wh")
    assert plots.so_far(field, dt.UTC, now=evening + DAY) == plots.SoFar(0.0, pytest.approx(1500.0), "Wh")
    assert plots.so_far(manage.get_field(channel.channel, 2), dt.UTC) is None  # a gauge has none
    assert "today so far" in page.text


def test_bars_per_hour_day_and_month(channel: ChannelKeys) -> None:
    from fieldstation.dashboard import plots

    power_field(channel, unit="kW")
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime_to_us(dt.datetime(2026, 1, 1, tzinfo=berlin))
    write(channel, [(start + i * HOUR, 1.0) for i in range(24 * 70 + 1)])  # 1 kW for 70 days
    field = manage.get_field(channel.channel, 1)
    hours = plots.bars(field, start, start + DAY, berlin)
    assert [b.value for b in hours] == [pytest.approx(1.0)] * 24
    days = plots.bars(field, start, start + 10 * DAY, berlin)
    assert [b.value for b in days] == [pytest.approx(24.0)] * 10
    months = plots.bars(field, start, datetime_to_us(dt.datetime(2027, 1, 1, tzinfo=berlin)), berlin)
    assert [(round(b.value, 6)) for b in months] == [31 * 24.0, 28 * 24.0, 11 * 24.0]
    assert months[1].start == datetime_to_us(dt.datetime(2026, 2, 1, tzinfo=berlin))


def test_local_days_read_day_slots_and_the_hours_past_each_cut(channel: ChannelKeys) -> None:
    """Ten Berlin days of one-minute readings: per day its day slot and the two hours after
    local midnight's cut (22:00 UTC in summer), not 24 hour slots; the totals stay exact."""
    from fieldstation import energy

    fid = power_field(channel)
    berlin = ZoneInfo("Europe/Berlin")
    start = datetime_to_us(dt.datetime(2026, 6, 1, tzinfo=berlin))
    write(channel, [(start - HOUR + i * MINUTE, 100.0 + i % 7) for i in range(11 * 24 * 60)])
    end = start + 10 * DAY
    planned = energy.plan(start, end, DAY, berlin)
    pieces = energy._pieces(fid, start, end, planned, HOUR)
    # the first two hours (the window starts at 22:00 UTC) and the last 22 (it ends at 22:00)
    assert len(pieces) <= 2 + 9 * 3 + 22
    readings = {start - HOUR + i * MINUTE: 100.0 + i % 7 for i in range(11 * 24 * 60)}
    expected = plain_totals(readings, start, end, DAY, "Europe/Berlin", HOUR)
    assert _as_dict(totals(fid, start, end, DAY, tz=berlin)) == _approx(expected)


def test_the_embedded_bar_chart_shows_today_so_far_and_this_month(
    channel: ChannelKeys, client: FlaskClient
) -> None:
    """type=bars: the bars of the window, and below them the channel page's today and this month."""
    from fieldstation.dashboard import plots

    power_field(channel)
    midnight = datetime_to_us(dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0))
    # 1,000 W for 36 s after midnight (10 Wh today); 500 W for an hour ten days before
    write(channel, [(midnight, 1000.0), (midnight + 36 * SECOND, 0.0)])
    write(channel, [(midnight - 10 * DAY, 500.0), (midnight - 10 * DAY + HOUR, 0.0)])
    week = {"range": "7d", "api_key": channel.read_key, "tz": "UTC"}
    embed = client.get(f"/channels/{channel.id}/charts/1", query_string=week | {"type": "bars"})
    assert embed.status_code == 200
    field = manage.get_field(channel.channel, 1)
    found = plots.so_far(field, dt.UTC)
    assert found is not None and found.today == pytest.approx(10.0)
    today = dt.datetime.now(dt.UTC).date()
    month = "260" if (today - dt.timedelta(days=10)).month == today.month else "10"
    assert f"{found.month:.6g}" == month
    shown = re.search(
        r'class="so-far"[^>]*>today so far <strong>([^<]+)</strong> Wh · this month <strong>([^<]+)',
        embed.text,
    )
    assert shown is not None and shown.groups() == ("10", month)
    page = client.get(f"/dashboard/channels/{channel.id}", query_string=week)
    assert f"today so far <strong>10</strong> Wh · this month <strong>{month}</strong>" in page.text
    line = client.get(f"/channels/{channel.id}/charts/1", query_string=week)  # the line chart has none
    assert "so-far" not in line.text


def thingspeak_sums(client: FlaskClient, channel: ChannelKeys, **args: Any) -> list[tuple[str, str | None]]:
    response = client.get(
        f"/channels/{channel.id}/feeds.json", query_string={"api_key": channel.read_key} | args
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    return [(f["created_at"], f.get("field1"), f.get("field2")) for f in response.get_json()["feeds"]]


def test_thingspeak_sum_of_a_power_field_is_its_energy(channel: ChannelKeys, client: FlaskClient) -> None:
    """sum=daily|60 on feeds.json: energy for a power field, ThingSpeak's plain sum for a gauge beside it."""
    power_field(channel)
    readings = ninety_minutes_at_1000_w(DAY0 + 8 * HOUR)
    store.write(Batch(channel.id, [Entry({1: v, 2: 2.0}, ts=ts) for ts, v in readings]))
    window = {"start": "2026-06-01 00:00:00", "end": "2026-06-02 00:00:00"}
    daily = thingspeak_sums(client, channel, sum="daily", **window)
    assert daily == [("2026-06-01T00:00:00Z", "1500", "182")]  # 91 readings of 2.0 on the gauge
    hourly = thingspeak_sums(client, channel, sum="60", **window)
    assert hourly == [("2026-06-01T08:00:00Z", "1000", "120"), ("2026-06-01T09:00:00Z", "500", "62")]
    fields = client.get(
        f"/channels/{channel.id}/fields/1.json",
        query_string={"api_key": channel.read_key, "sum": "daily"} | window,
    )
    assert [f["field1"] for f in fields.get_json()["feeds"]] == ["1500"]
    averaged = thingspeak_sums(client, channel, average="daily", **window)  # an average stays an average
    assert averaged[0][1] == number_text(1000.0 * 90 / 91)


def test_thingspeak_daily_sums_follow_local_days_and_counter_resets(
    channel: ChannelKeys, client: FlaskClient
) -> None:
    power_field(channel, unit="l", kind="counter")
    berlin = ZoneInfo("Europe/Berlin")
    first = datetime_to_us(dt.datetime(2026, 3, 28, 23, tzinfo=berlin))
    values = [100.0, 130.0, 5.0, 25.0]  # 30 l before midnight; at the reset 5 l, then 20 l
    write(channel, [(first + i * HOUR, v) for i, v in enumerate(values)])
    sums = thingspeak_sums(
        client,
        channel,
        sum="daily",
        timezone="Europe/Berlin",
        start="2026-03-28 00:00:00",
        end="2026-03-30 00:00:00",
    )
    # the 28th: one reading, nothing risen yet; the 29th (23 hours): 30 + 5 (the reset) + 20
    assert [(t, v) for t, v, _ in sums] == [
        ("2026-03-28T00:00:00+01:00", "0"),
        ("2026-03-29T00:00:00+01:00", "55"),
    ]
