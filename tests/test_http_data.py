"""The JSON read API under /api/v1: readings, buckets, latest values, exports, access and bad input."""

from __future__ import annotations

import csv
import io
import json

import pytest
from flask.testing import FlaskClient

from fieldstation import store
from fieldstation.points import Batch, Entry
from fieldstation.timeunits import HOUR, MINUTE, SECOND
from tests.factories import ChannelKeys, make_channel, make_user

T0 = 1_700_000_000 * SECOND - (1_700_000_000 * SECOND) % HOUR  # 2023-11-14T22:00:00Z
ISO0 = "2023-11-14T22:00:00Z"


@pytest.fixture
def channel(channel: ChannelKeys) -> ChannelKeys:
    """The shared channel with two hours of readings, statuses and a text value."""
    keys = channel
    store.write(
        Batch(
            keys.id,
            [Entry({1: 20.0 + i, 2: 50.0 - i}, ts=T0 + i * MINUTE, status=f"s{i}") for i in range(120)]
            + [Entry({1: "oops"}, ts=T0 + 120 * MINUTE)],
        )
    )
    return keys


def get(client: FlaskClient, url: str, key: str | None, **query: object) -> tuple[int, dict]:  # type: ignore[type-arg]
    if key:
        query["api_key"] = key
    response = client.get(url, query_string=query)
    return response.status_code, response.get_json()


def test_readings_of_two_fields_with_cursor(client: FlaskClient, channel: ChannelKeys) -> None:
    url = f"/api/v1/channels/{channel.id}/readings"
    status, body = get(
        client, url, channel.read_key, fields="1,2", start=ISO0, end="2023-11-14T22:05:00Z", limit=3
    )
    assert status == 200
    assert [r["time"] for r in body["readings"]] == [
        "2023-11-14T22:00:00Z",
        "2023-11-14T22:01:00Z",
        "2023-11-14T22:02:00Z",
    ]
    assert body["readings"][0]["values"] == {"1": 20.0, "2": 50.0}
    _, page2 = get(
        client,
        url,
        channel.read_key,
        fields="1,2",
        start=ISO0,
        end="2023-11-14T22:05:00Z",
        limit=3,
        cursor=body["next_cursor"],
    )
    assert [r["values"]["1"] for r in page2["readings"]] == [23.0, 24.0] and page2["next_cursor"] is None
    _, down = get(
        client,
        url,
        channel.read_key,
        fields="1",
        start=ISO0,
        end="2023-11-15T00:01:00Z",
        order="desc",
        limit=2,
    )
    assert [r["values"]["1"] for r in down["readings"]] == ["oops", 139.0]


def test_buckets_with_functions(client: FlaskClient, channel: ChannelKeys) -> None:
    status, body = get(
        client, f"/api/v1/channels/{channel.id}/buckets", channel.read_key,
        fields="1", start=ISO0, end="2023-11-15T00:00:00Z", every="1h", fn="avg,min,max,count,first,last,sum",
    )  # fmt: skip
    assert status == 200 and body["every_s"] == 3600
    first = body["series"][0]["buckets"][0]
    assert first == {
        "time": ISO0, "ts": T0, "avg": 49.5, "min": 20.0, "max": 79.0, "sum": 2970.0,
        "count": 60, "first": 20.0, "last": 79.0,
    }  # fmt: skip
    _, auto = get(
        client,
        f"/api/v1/channels/{channel.id}/buckets",
        channel.read_key,
        start=ISO0,
        end="2023-11-15T00:00:00Z",
        points=10,
    )
    assert auto["every_s"] == 900 and len(auto["series"]) == 2
    assert len(auto["series"][0]["buckets"]) == 8
    _, local = get(
        client,
        f"/api/v1/channels/{channel.id}/buckets",
        channel.read_key,
        fields="1",
        start=ISO0,
        end="2023-11-16T00:00:00Z",
        every="1d",
        tz="Asia/Tokyo",
    )
    assert local["series"][0]["buckets"][0]["time"] == "2023-11-15T00:00:00+09:00"


def test_latest(client: FlaskClient, channel: ChannelKeys) -> None:
    _, entry = get(client, f"/api/v1/channels/{channel.id}/entries/latest", channel.read_key)
    assert entry["entry_id"] == 121 and entry["values"] == {"1": "oops"}
    _, latest = get(client, f"/api/v1/channels/{channel.id}/latest", channel.write_key)
    assert [(f["name"], f["value"]) for f in latest["fields"]] == [
        ("temperature", "oops"),
        ("humidity", -69.0),
    ]


def test_exports_stream_every_row(client: FlaskClient, channel: ChannelKeys) -> None:
    response = client.get(
        f"/api/v1/channels/{channel.id}/export.csv", query_string={"api_key": channel.read_key}
    )
    assert response.status_code == 200 and response.mimetype == "text/csv" and response.is_streamed
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == [
        "time",
        "entry_id",
        "temperature",
        "humidity",
        "status",
        "latitude",
        "longitude",
        "elevation",
    ]
    assert rows[1] == [ISO0, "1", "20", "50", "s0", "", "", ""] and len(rows) == 122
    field = client.get(
        f"/api/v1/channels/{channel.id}/fields/2/export.ndjson", query_string={"api_key": channel.read_key}
    )
    lines = [json.loads(line) for line in field.get_data(as_text=True).splitlines()]
    assert len(lines) == 120 and lines[-1] == {"time": "2023-11-14T23:59:00Z", "value": -69.0}


def test_access_rules(client: FlaskClient, channel: ChannelKeys) -> None:
    url = f"/api/v1/channels/{channel.id}/latest"
    other = make_channel(channel.channel.owner, "other")
    stranger = make_user("mallory")
    assert get(client, url, None)[0] == 404
    assert get(client, url, other.read_key)[0] == 404
    assert get(client, url, stranger.key)[0] == 404
    assert get(client, "/api/v1/channels/9999/latest", channel.read_key)[0] == 404
    owner_key = client.get(url, headers={"Authorization": f"Bearer {make_user_key(channel)}"})
    assert owner_key.status_code == 200
    public = make_channel(stranger.user, "open", public=True)
    assert get(client, f"/api/v1/channels/{public.id}/latest", None)[0] == 200


ROUTES = ["readings", "buckets", "entries/latest", "latest", "export.csv", "fields/1/export.ndjson"]


def test_every_route_answers_unknown_and_forbidden_alike(client: FlaskClient, channel: ChannelKeys) -> None:
    from fieldstation import auth, manage
    from fieldstation.models import ApiKey, KeyKind

    other = make_channel(channel.channel.owner, "other")
    stranger = make_user("mallory")
    revoked = manage.create_key(channel.channel.owner, KeyKind.READ, channel=channel.channel)[1]
    manage.revoke_key(auth.find_key(revoked) or ApiKey())
    owner = make_user_key(channel)
    for route in ROUTES:
        url = f"/api/v1/channels/{channel.id}/{route}"
        for key in (None, "NOSUCHKEY", other.read_key, other.write_key, stranger.key, revoked):
            assert client.get(url, query_string={"api_key": key} if key else {}).status_code == 404, (
                route,
                key,
            )
        for key in (channel.read_key, channel.write_key, owner):
            assert client.get(url, query_string={"api_key": key}).status_code == 200, (route, key)
        assert client.get(url, headers={"Authorization": f"Bearer {owner}"}).status_code == 200
        unknown = f"/api/v1/channels/99999/{route}"
        assert client.get(unknown, query_string={"api_key": channel.read_key}).status_code == 404
    # A bad fields= tells nothing about a channel one may not read: 404 first, 400 only when readable.
    readings = f"/api/v1/channels/{channel.id}/readings"
    assert get(client, readings, other.read_key, fields="7")[0] == 404
    assert get(client, readings, None, fields="x")[0] == 404
    assert get(client, readings, channel.read_key, fields="x")[0] == 400


def test_only_the_named_fields_are_read(client: FlaskClient, channel: ChannelKeys) -> None:
    url = f"/api/v1/channels/{channel.id}/readings"
    _, one = get(client, url, channel.read_key, fields="field2", start=ISO0, limit=2)
    assert one["fields"] == [{"number": 2, "name": "humidity", "unit": None}]
    assert [r["values"] for r in one["readings"]] == [{"2": 50.0}, {"2": 49.0}]
    _, both = get(client, url, channel.read_key, fields="2,1", start=ISO0, limit=1)
    assert [f["number"] for f in both["fields"]] == [2, 1] and both["readings"][0]["values"] == {
        "1": 20.0,
        "2": 50.0,
    }
    _, every = get(client, url, channel.read_key, start=ISO0, limit=1)
    assert [f["name"] for f in every["fields"]] == ["temperature", "humidity"]
    assert get(client, f"/api/v1/channels/{channel.id}/fields/3/export.csv", channel.read_key)[0] == 404


def make_user_key(channel: ChannelKeys) -> str:
    from fieldstation import manage
    from fieldstation.models import KeyKind

    return manage.create_key(channel.channel.owner, KeyKind.USER)[1]


@pytest.mark.parametrize(
    "query",
    [
        {"start": "-1h", "end": "-2h"},
        {"start": "yesterday"},
        {"tz": "Nowhere/Land"},
        {"limit": "0"},
        {"limit": "100001"},
        {"fields": "7"},
        {"cursor": "abc"},
        {"order": "sideways"},
    ],
)
def test_bad_readings_input_is_400(client: FlaskClient, channel: ChannelKeys, query: dict[str, str]) -> None:
    status, body = get(client, f"/api/v1/channels/{channel.id}/readings", channel.read_key, **query)
    assert status == 400 and body["error"]["message"]


@pytest.mark.parametrize(
    "query",
    [
        {"every": "1s", "start": "-365d"},
        {"every": "0s"},
        {"every": "soon"},
        {"fn": "mode"},
        {"points": "0"},
    ],
)
def test_bad_bucket_input_is_400(client: FlaskClient, channel: ChannelKeys, query: dict[str, str]) -> None:
    status, _ = get(client, f"/api/v1/channels/{channel.id}/buckets", channel.read_key, **query)
    assert status == 400
