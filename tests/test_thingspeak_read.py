"""ThingSpeak read API: the real `thingspeak` client against a real server, shapes, parameters, access."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Iterator

import pytest
import requests
import thingspeak
from flask import Flask
from flask.testing import FlaskClient

from fieldstation import store
from fieldstation.points import Batch, Entry
from fieldstation.timeunits import MINUTE, SECOND, now_us
from tests.factories import ChannelKeys, make_channel, make_user
from tests.liveserver import serve

T0 = 1_577_836_800 * SECOND  # 2020-01-01T00:00:00Z


@pytest.fixture
def channel(channel: ChannelKeys) -> ChannelKeys:
    """The shared channel with three entries: values, a status, a location."""
    keys = channel
    store.write(
        Batch(
            keys.id,
            [
                Entry({1: 21.5, 2: 55.0}, ts=T0, status="boot"),
                Entry({1: 22.0}, ts=T0 + MINUTE, latitude=52.52, longitude=13.4, elevation=34.0),
                Entry({2: 57.25}, ts=T0 + 2 * MINUTE, status="ok"),
            ],
        )
    )
    return keys


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    with serve(app) as url:
        yield url


def test_thingspeak_client_reads_what_was_written(channel: ChannelKeys, server: str) -> None:
    ch = thingspeak.Channel(channel.id, api_key=channel.read_key, server_url=server)
    feed = json.loads(ch.get({"results": 2}))
    assert feed["channel"]["id"] == channel.id and feed["channel"]["last_entry_id"] == 3
    assert feed["channel"]["field1"] == "temperature" and feed["channel"]["field2"] == "humidity"
    assert feed["feeds"] == [
        {"created_at": "2020-01-01T00:01:00Z", "entry_id": 2, "field1": "22", "field2": None},
        {"created_at": "2020-01-01T00:02:00Z", "entry_id": 3, "field1": None, "field2": "57.25"},
    ]
    field = json.loads(ch.get_field(1))
    assert [(f["entry_id"], f["field1"]) for f in field["feeds"]] == [(1, "21.5"), (2, "22")]
    assert json.loads(ch.get_field_last(2)) == {
        "created_at": "2020-01-01T00:02:00Z",
        "entry_id": 3,
        "field2": "57.25",
    }
    age = json.loads(ch.get_last_data_age(1))
    assert age["last_data_age_units"] == "s"
    assert abs(int(age["last_data_age"]) - (now_us() - T0 - MINUTE) // SECOND) <= 5
    view = json.loads(ch.view())
    assert view["name"] == "weather" and view["last_entry_id"] == 3
    bare = thingspeak.Channel(channel.id, api_key=channel.write_key, fmt="txt", server_url=server)
    assert bare.get_field_last(1) == "22"


def test_private_channel_needs_a_key_and_unknown_looks_the_same(channel: ChannelKeys, server: str) -> None:
    other = make_channel(channel.channel.owner, "other")
    for ch in (
        thingspeak.Channel(channel.id, server_url=server),
        thingspeak.Channel(channel.id, api_key=other.read_key, server_url=server),
        thingspeak.Channel(9999, api_key=channel.read_key, server_url=server),
    ):
        with pytest.raises(requests.HTTPError) as caught:
            ch.get()
        assert caught.value.response.status_code == 404 and caught.value.response.text == "-1"


def test_arduino_reads(client: FlaskClient, channel: ChannelKeys) -> None:
    headers = {"X-THINGSPEAKAPIKEY": channel.read_key, "Host": "api.thingspeak.com"}
    bare = client.get(f"/channels/{channel.id}/fields/1/last", headers=headers)
    assert bare.status_code == 200 and bare.get_data(as_text=True) == "22"
    last = client.get(f"/channels/{channel.id}/feeds/last.txt?status=true&location=true", headers=headers)
    text = last.get_data(as_text=True)
    for key, value in [("created_at", "2020-01-01T00:02:00Z"), ("field2", "57.25"), ("status", "ok")]:
        assert f'"{key}":"{value}"' in text
    assert json.loads(text)["entry_id"] == 3 and json.loads(text)["latitude"] is None


def test_parameters(client: FlaskClient, channel: ChannelKeys) -> None:
    def feeds(**args: object) -> list[dict[str, object]]:
        response = client.get(
            f"/channels/{channel.id}/feeds.json", query_string={"api_key": channel.read_key, **args}
        )
        assert response.status_code == 200, response.headers.get("X-Fieldstation-Error")
        return response.get_json()["feeds"]  # type: ignore[no-any-return]

    assert [f["created_at"] for f in feeds(timezone="Europe/Berlin", results=1)] == [
        "2020-01-01T01:02:00+01:00"
    ]
    assert feeds(offset="-5", results=1)[0]["created_at"] == "2019-12-31T19:02:00-05:00"
    assert len(feeds(start="2020-01-01 00:00:30", end="2020-01-01 00:01:30")) == 1
    assert feeds(status="true", results=3)[0]["status"] == "boot"
    loc = feeds(location="true", results=2)[0]
    assert (loc["latitude"], loc["longitude"], loc["elevation"]) == ("52.52", "13.4", "34")
    assert [(f["field1"], f["field2"]) for f in feeds(min=21.8, max=56)] == [(None, "55"), ("22", None)]
    assert feeds(round=2, results=1)[0]["field2"] == "57.25"
    assert feeds(round=0, results=3)[0]["field1"] == "22"  # 21.5 rounds half to even
    assert feeds(days=1) == [] and feeds(minutes=5) == []
    assert feeds(results=0) == []
    avg = feeds(average=10)
    assert avg == [
        {"created_at": "2020-01-01T00:00:00Z", "entry_id": None, "field1": "21.75", "field2": "56.125"}
    ]
    assert feeds(sum="daily")[0]["field1"] == "43.5"
    assert feeds(median=60)[0]["field2"] == "56.125"
    assert feeds(timescale=15)[0]["field1"] == "21.5"


@pytest.mark.parametrize(
    "args",
    [
        {"results": "8001"},
        {"results": "lots"},
        {"timezone": "Mars/Base"},
        {"start": "2020-01-02", "end": "2020-01-01"},
        {"average": "7"},
        {"sum": "10", "median": "10"},
        {"min": "nan"},
        {"round": "-1"},
    ],
)
def test_bad_parameters_are_400_minus_one(
    client: FlaskClient, channel: ChannelKeys, args: dict[str, str]
) -> None:
    response = client.get(
        f"/channels/{channel.id}/feeds.json", query_string={"api_key": channel.read_key, **args}
    )
    assert response.status_code == 400 and response.get_data(as_text=True) == "-1"
    assert response.headers["X-Fieldstation-Error"]


def test_csv_xml_and_status(client: FlaskClient, channel: ChannelKeys) -> None:
    key = {"api_key": channel.read_key}
    csv_text = client.get(f"/channels/{channel.id}/fields/2.csv", query_string=key).get_data(as_text=True)
    assert csv_text.splitlines() == [
        "created_at,entry_id,field2",
        "2020-01-01 00:00:00 UTC,1,55",
        "2020-01-01 00:02:00 UTC,3,57.25",
    ]
    root = ET.fromstring(client.get(f"/channels/{channel.id}/feeds.xml", query_string=key).get_data())
    assert root.tag == "channel" and root.findtext("last-entry-id") == "3"
    assert [f.findtext("entry-id") for f in root.iter("feed")] == ["1", "2", "3"]
    status = client.get(f"/channels/{channel.id}/status.json", query_string=key).get_json()
    assert [(f["entry_id"], f["status"]) for f in status["feeds"]] == [(1, "boot"), (3, "ok")]


def test_public_channel_and_empty_field(client: FlaskClient, app: Flask) -> None:
    public = make_channel(make_user("bob").user, "open", public=True)
    assert client.get(f"/channels/{public.id}/feeds.json").get_json()["feeds"] == []
    assert client.get(f"/channels/{public.id}/fields/1/last").status_code == 404
    assert client.get(f"/channels/{public.id}/fields/9.json").status_code == 404


def test_names_beyond_ascii_and_more_than_eight_fields(client: FlaskClient, app: Flask) -> None:
    owner = make_user("zoe").user
    wide = make_channel(
        owner, "Wetter Zürich", fields=[f"Temperatur {i} °C" for i in range(1, 11)], public=True
    )
    store.write(Batch(wide.id, [Entry({n: float(n) for n in range(1, 11)}, ts=T0)]))
    body = client.get(f"/channels/{wide.id}/feeds.json").get_json()
    assert body["channel"]["name"] == "Wetter Zürich" and body["channel"]["field8"] == "Temperatur 8 °C"
    assert "field9" not in body["channel"] and "field9" not in body["feeds"][0]
    assert body["feeds"][0]["field8"] == "8"
    view = client.get(f"/channels/{wide.id}.json")
    assert view.mimetype == "application/json" and view.get_json()["name"] == "Wetter Zürich"
