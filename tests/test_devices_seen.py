"""Devices seen: every way a write names a device records it, once per batch, apart from the allow-list."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fieldstation import devices, manage, store
from fieldstation.extensions import db
from fieldstation.models import KeyKind
from fieldstation.points import Batch, Entry
from fieldstation.timeunits import US, now_us
from tests.factories import Account, ChannelKeys, make_channel, make_user

MIN = 60 * US


@pytest.fixture
def account(app: Flask) -> Account:
    return make_user()


@pytest.fixture
def channel(account: Account) -> ChannelKeys:
    return make_channel(account.user)


def seen_by_device(channel_id: int) -> dict[str, tuple[int, int]]:
    db.session.remove()
    return {d.device: (d.writes, d.entries) for d in devices.seen(channel_id, now_us())}


def test_every_way_in_records_the_device(client: FlaskClient, channel: ChannelKeys) -> None:
    key = channel.write_key
    assert client.get(f"/update?api_key={key}&field1=1&mac=AA:01").status_code == 200  # hot path
    assert client.get(f"/update/API_key={key}/mac=aa:02/field=1/data=2").status_code == 200  # seed URL
    assert client.post("/update?mac=aa:03", data={"api_key": key, "field1": "3"}).status_code == 200
    lines = "weather temperature=4 1700000000000000000\nweather temperature=5 1700000001000000000\n"
    response = client.post("/write?db=weather&precision=ns&mac=aa:04", data=lines, auth=("x", key))
    assert response.status_code == 204
    assert (
        client.post("/write?db=weather&mac=aa:05", data="weather temperature=6", auth=("x", key)).status_code
        == 204
    )
    body = [
        {"values": {"temperature": 7}, "time": "2024-01-01T00:00:00Z"},
        {"values": {"temperature": 8}, "time": "2024-01-01T00:01:00Z"},
    ]
    response = client.post(
        f"/api/v1/channels/{channel.id}/entries?mac=aa:06",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
    )
    assert response.status_code == 201, response.text
    _, bound = manage.create_key(
        channel.channel.owner, KeyKind.WRITE, channel=channel.channel, device="aa:07"
    )
    assert client.get(f"/update?api_key={bound}&field1=9").status_code == 200  # the key's device
    assert client.get(f"/update?api_key={key}&field1=10").status_code == 200  # names none: not counted
    assert seen_by_device(channel.id) == {
        "aa:01": (1, 1),
        "aa:02": (1, 1),
        "aa:03": (1, 1),
        "aa:04": (1, 2),
        "aa:05": (1, 1),
        "aa:06": (1, 2),
        "aa:07": (1, 1),
    }


def test_one_row_per_batch_and_hour_and_nothing_for_a_refused_write(channel: ChannelKeys) -> None:
    start = now_us() - 3 * 3600 * US
    entries = [Entry({1: float(i)}, start + i * US) for i in range(500)]
    store.write(Batch(channel.id, entries, device="big"), now=start)
    store.write(Batch(channel.id, [Entry({1: 1.0})], device="big"), now=start + MIN)
    with pytest.raises(Exception, match="no field 9"):
        store.write(Batch(channel.id, [Entry({9: 1.0})], device="big"), now=start + 2 * MIN)
    rows = db.session.execute(db.text("SELECT writes, entries, first_us, last_us FROM device_activity")).all()
    assert [tuple(r) for r in rows] == [(2, 501, start, start + MIN)]


def test_seeing_a_device_never_restricts_writers(client: FlaskClient, channel: ChannelKeys) -> None:
    key = channel.write_key
    assert client.get(f"/update?api_key={key}&field1=1&mac=aa:01").status_code == 200
    assert client.get(f"/update?api_key={key}&field1=2&mac=bb:02").status_code == 200
    assert set(seen_by_device(channel.id)) == {"aa:01", "bb:02"}
    assert db.session.execute(db.text("SELECT count(*) FROM devices")).scalar() == 0  # allow-list empty
    assert client.get(f"/update?api_key={key}&field1=3&mac=cc:03").status_code == 200


def test_median_interval_marks_a_quiet_device_silent(channel: ChannelKeys) -> None:
    start = now_us() - 5 * 3600 * US
    for i in range(30):  # every minute for half an hour
        store.write(Batch(channel.id, [Entry({1: float(i)})], device="steady"), now=start + i * MIN)
    last = start + 29 * MIN
    (before,) = devices.seen(channel.id, last + 9 * MIN)
    assert before.median_interval_s == pytest.approx(60) and before.expected_from == "median"
    assert not before.silent
    (after,) = devices.seen(channel.id, last + 11 * MIN)
    assert after.silent and after.expected_interval_s == pytest.approx(600)


def test_expected_interval_of_device_wins_over_channel(channel: ChannelKeys) -> None:
    t = now_us() - 3600 * US
    store.write(Batch(channel.id, [Entry({1: 1.0})], device="a"), now=t)
    store.write(Batch(channel.id, [Entry({1: 1.0})], device="b"), now=t)
    (one, _) = devices.seen(channel.id, t + 10 * MIN)
    assert one.expected_interval_s is None and not one.silent  # one write: no median yet
    devices.set_expected(channel.id, None, 3600 * 2)
    devices.set_expected(channel.id, "B", 300)
    found = {d.device: d for d in devices.seen(channel.id, t + 10 * MIN)}
    assert (found["a"].expected_from, found["a"].silent) == ("channel", False)
    assert (found["b"].expected_from, found["b"].silent) == ("device", True)


def test_management_api_lists_and_sets(client: FlaskClient, account: Account, channel: ChannelKeys) -> None:
    url = f"/api/v1/channels/{channel.id}/seen-devices"
    store.write(Batch(channel.id, [Entry({1: 1.0})], device="aa:01"), now=now_us() - 3600 * US)
    answer = client.get(url, headers=account.headers)
    assert answer.status_code == 200
    (device,) = answer.json["devices"]
    assert device["device"] == "aa:01" and device["silent"] is False and device["writes"] == 1
    answer = client.patch(f"{url}/AA:01", json={"expected_interval_s": 60}, headers=account.headers)
    assert answer.status_code == 200 and answer.json["devices"][0]["silent"] is True
    answer = client.patch(url, json={"expected_interval_s": 7200}, headers=account.headers)
    assert answer.json["expected_interval_s"] == 7200
    for bad in (
        {"expected_interval_s": 0},
        {"expected_interval_s": "x"},
        {"other": 1},
        {"expected_interval_s": 10**12},
    ):
        assert client.patch(url, json=bad, headers=account.headers).status_code == 400
    assert (
        client.patch(f"{url}/bad%20id", json={"expected_interval_s": 5}, headers=account.headers).status_code
        == 400
    )
    other = make_user("bob")
    assert client.get(url, headers=other.headers).status_code == 404
    assert client.get(url).status_code == 401


def test_cli_lists_and_sets(app: Flask, channel: ChannelKeys) -> None:
    runner = app.test_cli_runner()
    store.write(Batch(channel.id, [Entry({1: 1.0})], device="aa:01"), now=now_us() - 3600 * US)
    result = runner.invoke(args=["devices", "expect", "weather", "60", "--device", "aa:01"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(args=["devices", "seen", str(channel.id)])
    assert result.exit_code == 0 and "aa:01" in result.output and "SILENT" in result.output
    result = runner.invoke(args=["devices", "expect", "weather", "soon"])
    assert result.exit_code != 0 and "whole number" in result.output


def test_channel_page_shows_devices_seen_to_the_owner(app: Flask, channel: ChannelKeys) -> None:
    from tests.test_dashboard import sign_in

    app.config["WTF_CSRF_ENABLED"] = False
    web = app.test_client()
    store.write(Batch(channel.id, [Entry({1: 1.0})], device="aa:01"), now=now_us() - 3600 * US)
    devices.set_expected(channel.id, "aa:01", 60)
    sign_in(web)
    page = web.get(f"/dashboard/channels/{channel.id}").text
    assert "Devices seen" in page and "aa:01" in page and "silent" in page
    manage.update_channel(channel.channel, public=True)
    stranger = app.test_client().get(f"/dashboard/channels/{channel.id}").text
    assert "aa:01" not in stranger


def test_compact_keeps_the_totals(channel: ChannelKeys) -> None:
    start = now_us() - 5 * 86400 * US
    for day in range(5):
        store.write(Batch(channel.id, [Entry({1: 1.0})] * 1, device="d"), now=start + day * 86400 * US)
    before = seen_by_device(channel.id)
    assert devices.compact(now_us()) == 4  # days 0-3; day 4 is within two days
    assert seen_by_device(channel.id) == before == {"d": (5, 5)}
    count = db.session.execute(db.text("SELECT count(*) FROM device_activity")).scalar()
    assert count == 2  # the folded row and the last two days' hour
