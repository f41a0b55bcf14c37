"""JSON API write: POST /api/v1/channels/<id>/entries."""

from __future__ import annotations

import gzip
import itertools
import json
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldstation.errors import BadRequest
from fieldstation.http.entries import decode_json, iso_time
from fieldstation.points import parse_time
from fieldstation.timeunits import MAX_TS_US, MIN_TS_US, us_to_datetime
from tests import readback
from tests.factories import Account, ChannelKeys, make_channel, make_user

_names = itertools.count()


def post(client: FlaskClient, channel_id: int, body: Any, key: str, **kwargs: Any) -> Any:
    return client.post(
        f"/api/v1/channels/{channel_id}/entries",
        json=body,
        headers={"Authorization": f"Bearer {key}"},
        **kwargs,
    )


def test_one_entry_with_everything(client: FlaskClient, channel: ChannelKeys) -> None:
    body = {
        "time": "2024-01-01T01:00:00+01:00",
        "values": {"temperature": 21.5, "2": "55"},
        "status": "ok",
        "latitude": 52.5,
        "longitude": 13.4,
        "elevation": 34,
    }
    response = post(client, channel.id, body, channel.write_key)
    assert response.status_code == 201
    assert response.json["count"] == 1 and response.json["entry_ids"] == [1] and response.json["points"] == 2
    assert response.json["entries"][0]["time"] == "2024-01-01T00:00:00+00:00"
    assert readback.entries(channel.id) == [(1, 1_704_067_200_000_000, "ok", 52.5, 13.4, 34.0)]
    assert readback.values_by_field(channel.id) == {"temperature": [21.5], "humidity": [55.0]}


@pytest.mark.parametrize(
    ("time", "expected"),
    [
        (1_704_067_200, 1_704_067_200_000_000),
        (1_704_067_200_123, 1_704_067_200_123_000),
        (1_704_067_200_123_456, 1_704_067_200_123_456),
        (1_704_067_200_123_456_789, 1_704_067_200_123_456),
        ("2024-01-01T00:00:00.5Z", 1_704_067_200_500_000),
    ],
)
def test_epoch_units(client: FlaskClient, channel: ChannelKeys, time: object, expected: int) -> None:
    assert post(client, channel.id, {"time": time, "values": {"1": 1}}, channel.write_key).status_code == 201
    assert readback.entries(channel.id)[0][1] == expected


def test_list_is_all_or_nothing(client: FlaskClient, channel: ChannelKeys) -> None:
    good = [{"time": 1_700_000_000 + i, "values": {"1": i}} for i in range(100)]
    response = post(client, channel.id, good, channel.write_key)
    assert response.status_code == 201 and response.json["count"] == 100
    bad = [{"time": 1_600_000_000, "values": {"1": 1}}, {"values": {"nope": 1}}]
    refused = post(client, channel.id, bad, channel.write_key)
    assert refused.status_code == 400 and "entries[1]" in refused.json["error"]["message"]
    assert len(readback.entries(channel.id)) == 100


def test_server_time_and_retry_is_idempotent(client: FlaskClient, channel: ChannelKeys) -> None:
    assert post(client, channel.id, {"values": {"1": 1}}, channel.write_key).status_code == 201
    same = {"time": 1_700_000_000, "values": {"1": 2}}
    first = post(client, channel.id, same, channel.write_key).json
    again = post(client, channel.id, same, channel.write_key).json
    assert first["entry_ids"] == again["entry_ids"] and again["created"] == 0
    assert len(readback.entries(channel.id)) == 2


def test_owner_user_key_writes_and_others_do_not(
    client: FlaskClient, owner: Account, channel: ChannelKeys
) -> None:
    assert post(client, channel.id, {"values": {"1": 1}}, owner.key).status_code == 201
    stranger = make_user("mallory")
    assert post(client, channel.id, {"values": {"1": 1}}, stranger.key).status_code == 404
    assert post(client, channel.id, {"values": {"1": 1}}, channel.read_key).status_code == 401
    other = make_channel(owner.user, name="other")
    assert post(client, channel.id, {"values": {"1": 1}}, other.write_key).status_code == 401
    assert len(readback.entries(channel.id)) == 1


@pytest.mark.parametrize(
    "headers",
    [{"X-Fieldstation-Key": "{key}"}, {}],
)
def test_key_in_header_or_query(client: FlaskClient, channel: ChannelKeys, headers: dict[str, str]) -> None:
    headers = {k: v.replace("{key}", channel.write_key) for k, v in headers.items()}
    query = "" if headers else f"?api_key={channel.write_key}"
    response = client.post(
        f"/api/v1/channels/{channel.id}/entries{query}", json={"values": {"1": 1}}, headers=headers
    )
    assert response.status_code == 201


def test_gzip_body(client: FlaskClient, channel: ChannelKeys) -> None:
    body = gzip.compress(json.dumps({"values": {"1": 3}}).encode())
    response = client.post(
        f"/api/v1/channels/{channel.id}/entries",
        data=body,
        headers={"Authorization": f"Bearer {channel.write_key}", "Content-Encoding": "gzip"},
    )
    assert response.status_code == 201


def test_too_many_entries(app: Flask, client: FlaskClient, channel: ChannelKeys) -> None:
    app.config["MAX_BATCH_ENTRIES"] = 10
    response = post(client, channel.id, [{"values": {"1": i}} for i in range(11)], channel.write_key)
    assert response.status_code == 400 and response.json["error"]["code"] == "too_many_entries"


@pytest.mark.parametrize(
    "body",
    [
        [],
        {},
        "x",
        {"values": []},
        {"values": {"1": None}},
        {"values": {"1": float("nan")}},
        {"values": {"9": 1}},
        {"values": {"1": 1}, "time": "soon"},
        {"values": {"1": 1}, "time": 10**30},
        {"values": {"1": 1}, "time": True},
        {"values": {"1": 1}, "time": {}},  # found by schemathesis: objects and lists were a 500
        [{"values": {"1": 1}, "time": [1]}],
        {"values": {"1": 1}, "latitude": 91},
        {"values": {"1": 1}, "latitude": "52"},
        {"values": {"1": 1}, "status": 5},
        {"values": {"1": 1}, "extra": 1},
        {"values": {"1": 1, "field1": 2}},
    ],
)
def test_bad_entries_are_400(client: FlaskClient, channel: ChannelKeys, body: Any) -> None:
    response = post(client, channel.id, body, channel.write_key)
    assert response.status_code == 400 and response.json["error"]["message"]
    assert readback.entries(channel.id) == []


def test_not_json(client: FlaskClient, channel: ChannelKeys) -> None:
    response = client.post(
        f"/api/v1/channels/{channel.id}/entries",
        data=b"[" * 100_000,
        headers={"Authorization": f"Bearer {channel.write_key}"},
    )
    assert response.status_code == 400 and response.json["error"]["code"] == "invalid_json"


_json_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**20), 10**20),
    st.floats(),
    st.text(max_size=300),
    st.lists(st.integers(), max_size=2),
)
_entry = st.fixed_dictionaries(
    {},
    optional={
        "time": st.one_of(st.integers(-(10**20), 10**20), st.text(max_size=30), st.floats()),
        "values": st.dictionaries(
            st.sampled_from(["1", "2", "field2", "temperature", "x", "3"]), _json_value
        ),
        "status": st.one_of(st.text(max_size=300), st.integers()),
        "latitude": st.one_of(st.floats(), st.integers()),
    },
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(_entry, st.lists(_entry, max_size=4)))
def test_entries_are_stored_exactly_or_refused(app: Flask, body: Any) -> None:
    ch = make_channel(make_user(f"u{next(_names)}").user)
    try:
        payload = json.dumps(body, allow_nan=True)
    except ValueError:
        return
    response = app.test_client().post(
        f"/api/v1/channels/{ch.id}/entries",
        data=payload,
        headers={"Authorization": f"Bearer {ch.write_key}", "Content-Type": "application/json"},
    )
    stored = readback.readings(ch.id)
    if response.status_code != 201:
        assert response.status_code == 400 and stored == [] and readback.entries(ch.id) == []
        return
    items = body if isinstance(body, list) else [body]
    names = {"1": "temperature", "2": "humidity", "field2": "humidity", "temperature": "temperature"}
    sent = [(names[k], v) for item in items for k, v in item.get("values", {}).items()]
    got = [(name, text if value is None else value) for name, _, value, text in stored]
    assert sorted(map(repr, got)) == sorted(
        repr((name, (float(v) if not isinstance(v, str) else _num_or_text(v))))
        for name, v in _dedupe(sent, items)
    )


def _num_or_text(text: str) -> float | str:
    try:
        return float(text.strip())
    except ValueError:
        return text.strip()


def _dedupe(sent: list[tuple[str, Any]], items: list[dict[str, Any]]) -> list[tuple[str, Any]]:
    """Entries with the same explicit time merge (the later value of a field wins)."""
    merged: dict[tuple[object, str], Any] = {}
    for index, item in enumerate(items):
        when = ("server", index) if item.get("time") is None else parse_time(item["time"])
        for key, value in item.get("values", {}).items():
            name = {"1": "temperature", "temperature": "temperature"}.get(key, "humidity")
            merged[(repr(when), name)] = value
    del sent
    return [(name, value) for (_, name), value in merged.items()]


def test_numbers_beyond_floats_are_400(client: FlaskClient, channel: ChannelKeys) -> None:
    """JSON integers of any size: too big for a float is a 400, not a crash; 70 bits is a float."""
    huge = "1" + "0" * 400
    for body in (
        f'{{"values": {{"1": {huge}}}}}',
        f'{{"values": {{"1": 1}}, "latitude": {huge}}}',
        f'{{"values": {{"1": 1}}, "time": {huge}}}',
    ):
        response = client.post(
            f"/api/v1/channels/{channel.id}/entries",
            data=body,
            headers={"Authorization": f"Bearer {channel.write_key}", "Content-Type": "application/json"},
        )
        assert response.status_code == 400 and response.json["error"]["code"] in ("bad_value", "bad_time")
    assert post(client, channel.id, {"values": {"1": 2**70 + 1}}, channel.write_key).status_code == 201
    assert readback.values_by_field(channel.id) == {"temperature": [float(2**70)]}


_json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(), st.text(max_size=20)
)
_json = st.recursive(
    _json_leaf,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@given(_json, st.booleans())
def test_bodies_decode_as_the_json_module_decodes_them(doc: Any, ascii_only: bool) -> None:
    """orjson first (4x faster on a batch), the json module for what it refuses: one answer (#3).

    Lone surrogates, NaN and Infinity are among what orjson refuses.
    """
    data = json.dumps(doc, allow_nan=True, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")

    def outcome(decode: Any) -> str:
        try:
            return repr(decode(data))
        except (ValueError, BadRequest):
            return "refused"

    assert outcome(decode_json) == outcome(json.loads)


@given(st.integers(MIN_TS_US, MAX_TS_US))
def test_answer_times_are_isoformat(ts: int) -> None:
    assert iso_time(ts) == us_to_datetime(ts).isoformat()


@pytest.mark.parametrize(
    ("third", "message"),
    [
        ('{"1": 3.5, "field1": 4.5}', "field 1 is given twice"),
        ('{"1": 3.5, "humidity": Infinity}', "values.humidity: values must be finite numbers"),
        ('{"1": 1e308, "humidity": 1e308}', None),  # finite, although their sum is not
        ('{"1": "open", "humidity": 7}', None),  # text and integers: not the quick check's
    ],
)
def test_later_entries_are_checked_like_the_first(
    client: FlaskClient, channel: ChannelKeys, third: str, message: str | None
) -> None:
    """Entries whose keys are already known take a quicker check; it refuses and accepts alike."""
    first = '{"values": {"1": 1.5, "humidity": 0.5}}, {"values": {"field1": 2.5}}'
    body = f'[{first}, {{"values": {third}}}]'
    response = client.post(
        f"/api/v1/channels/{channel.id}/entries",
        data=body,
        headers={"Authorization": f"Bearer {channel.write_key}", "Content-Type": "application/json"},
    )
    if message is None:
        assert response.status_code == 201 and response.json["points"] == 5
    else:
        assert response.status_code == 400 and response.json["error"]["message"] == f"entries[2]: {message}"
        assert readback.entries(channel.id) == []
