"""ThingSpeak write API with the real clients: the `thingspeak` package and the Arduino library's bytes."""

from __future__ import annotations

import itertools
import json
import socket
import time
from collections.abc import Iterator
from urllib.parse import urlencode, urlsplit

import pytest
import thingspeak
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fieldstation import manage
from fieldstation.http.thingspeak_write import ts_time
from tests import readback
from tests.factories import ChannelKeys, make_channel, make_user
from tests.liveserver import SERVERS, uwsgi_server

_names = itertools.count()


pytestmark = pytest.mark.channel(fields=[f"f{i}" for i in range(1, 9)])


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest, app: Flask) -> Iterator[str]:
    """The app served for real, by each server a user may run it under."""
    start = SERVERS[request.param]
    with start(app) as url:
        yield url


# -- the thingspeak Python package -----------------------------------------------------------


def test_thingspeak_package_writes_and_data_is_stored(app: Flask, channel: ChannelKeys) -> None:
    with uwsgi_server(app) as url:
        as_json = thingspeak.Channel(channel.id, api_key=channel.write_key, fmt="json", server_url=url)
        reply = json.loads(as_json.update({"field1": 21.5, "field2": 55, "status": "hello"}))
        as_text = thingspeak.Channel(channel.id, api_key=channel.write_key, fmt="txt", server_url=url)
        second = as_text.update({"field1": 22})
        feed = json.loads(as_json.get({"results": 2}))  # read back through the ThingSpeak read API
    assert [(e["entry_id"], e["field1"]) for e in feed["feeds"]] == [(1, "21.5"), (2, "22")]
    assert reply["entry_id"] == 1 and reply["channel_id"] == channel.id
    assert reply["field1"] == "21.5" and reply["field2"] == "55" and reply["status"] == "hello"
    assert reply["created_at"].endswith("Z")
    assert second == "2"
    assert readback.values_by_field(channel.id) == {"f1": [21.5, 22.0], "f2": [55.0]}
    assert [e[2] for e in readback.entries(channel.id)] == ["hello", None]


def test_thingspeak_package_bad_key_raises_http_error(app: Flask, channel: ChannelKeys) -> None:
    import requests

    with uwsgi_server(app) as url:
        client = thingspeak.Channel(channel.id, api_key="WRONGKEY12345678", fmt="json", server_url=url)
        with pytest.raises(requests.HTTPError) as err:
            client.update({"field1": 1})
    assert err.value.response.status_code == 401
    assert readback.readings(channel.id) == []


# -- the Arduino library, byte for byte (docs/clients.md §2) ---------------------------------


def arduino_request(key: str, body: str, *, version: str = "2.1.1") -> bytes:
    """The exact request ThingSpeak.writeFields() sends (1.3.x: Connection: close, body + \\n)."""
    if version.startswith("1.3"):
        body += "\n"
    lines = ["POST /update HTTP/1.1", "Host: api.thingspeak.com"]
    if version.startswith(("1.3", "1.4")):
        lines.append("Connection: close")
    lines += [
        f"User-Agent: tslib-arduino/{version} (ESP8266)",
        f"X-THINGSPEAKAPIKEY: {key}",
        "Content-Type: application/x-www-form-urlencoded",
        f"Content-Length: {len(body.encode())}",
        "",
        "",
    ]
    return "\r\n".join(lines).encode() + body.encode()


def send_raw(url: str, request: bytes) -> bytes:
    """Send bytes, read the reply as the device does (until Content-Length bytes of body)."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            head, sep, body = data.partition(b"\r\n\r\n")
            if sep and b"Content-Length:" in head:
                length = int(head.split(b"Content-Length:")[1].split(b"\r\n")[0])
                if len(body) >= length:
                    break
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
    return data


def library_result(reply: bytes) -> int:
    """What ThingSpeak.writeFields() returns for this reply (getHTTPResponse + finishWrite)."""
    if len(reply) < 17:
        return -304
    at = reply.find(b"HTTP/1.1")
    if at < 0:
        return -303
    rest = reply[at + len(b"HTTP/1.1") :]
    digits = rest.lstrip(b" ")[:3]
    status = int(digits) if digits.isdigit() else 0
    if status != 200:
        return status
    at = rest.find(b"Content-Length:")  # case-sensitive, as String::find in the library
    if at < 0:
        return -303
    after = rest[at + len(b"Content-Length:") :]
    length = int(after.split(b"\r\n")[0].strip())
    body_at = after.find(b"\r\n\r\n")
    if body_at < 0:
        return -303
    body = after[body_at + 4 : body_at + 4 + length].decode()
    number = body.strip().split()[0] if body.strip() else ""
    value = int(number) if number.lstrip("-").isdigit() else 0  # String::toInt -> atol
    return 200 if value != 0 else -401


def test_arduino_library_writes_are_acknowledged(server: str, channel: ChannelKeys) -> None:
    key = channel.write_key
    cases = [
        ("2.1.1", "field1=42&headers=false"),
        ("2.1.1", "field2=21.50000&headers=false"),
        ("2.1.1", "field1=0&field2=21.50000&field3=abc&status=field1 is less than field2&headers=false"),
        (
            "1.5.0",
            "field1=7&lat=52.52&long=13.40&elevation=34.00&created_at=2017-01-12 13:22:54&headers=false",
        ),
        ("1.3.5", "field4=3.25000&headers=false"),
    ]
    replies = [send_raw(server, arduino_request(key, body, version=v)) for v, body in cases]
    assert [library_result(r) for r in replies] == [200] * len(cases)
    assert all(r.startswith(b"HTTP/1.1 200") for r in replies)
    stored = readback.entries(channel.id)
    assert len(stored) == 5
    assert stored[2][2] == "field1 is less than field2"
    assert (stored[3][3], stored[3][4], stored[3][5]) == (52.52, 13.40, 34.0)
    assert stored[3][1] == 1_484_227_374_000_000  # 2017-01-12 13:22:54 UTC
    values = readback.values_by_field(channel.id)
    assert values["f1"] == [7.0, 42.0, 0.0]  # time order: 2017 first
    assert values["f2"] == [21.5, 21.5] and values["f3"] == ["abc"] and values["f4"] == [3.25]


def test_arduino_library_sees_refusals(server: str, channel: ChannelKeys) -> None:
    bad_key = library_result(send_raw(server, arduino_request("NOTAKEY000000000", "field1=1&headers=false")))
    no_field = library_result(send_raw(server, arduino_request(channel.write_key, "headers=false")))
    assert bad_key == 401
    assert no_field == -401  # 200 with body 0: "not inserted"
    assert readback.readings(channel.id) == []


def test_diy_sketch_without_content_type(server: str, channel: ChannelKeys) -> None:
    """Hand-written sketches POST a form body without Content-Type, key in the body."""
    body = f"api_key={channel.write_key}&field1=5"
    request = (
        f"POST /update HTTP/1.1\r\nHost: example\r\nContent-Length: {len(body)}\r\n\r\n{body}"
    ).encode()
    assert library_result(send_raw(server, request)) == 200
    assert readback.values_by_field(channel.id) == {"f1": [5.0]}


# -- keys, devices and refusals through the test client --------------------------------------


@pytest.mark.parametrize(
    ("where", "name"),
    [
        ("header", "X-THINGSPEAKAPIKEY"),
        ("header", "THINGSPEAKAPIKEY"),
        ("query", "api_key"),
        ("query", "key"),
        ("query", "apikey"),
        ("form", "api_key"),
        ("form", "key"),
    ],
)
def test_key_is_taken_from_every_place(
    client: FlaskClient, channel: ChannelKeys, where: str, name: str
) -> None:
    headers = {name: channel.write_key} if where == "header" else {}
    query = f"?{name}={channel.write_key}" if where == "query" else ""
    form = {"field1": "1", **({name: channel.write_key} if where == "form" else {})}
    response = client.post(f"/update{query}", data=form, headers=headers)
    assert response.status_code == 200 and response.text == "1"


def test_read_key_and_revoked_key_cannot_write(client: FlaskClient, channel: ChannelKeys) -> None:
    assert client.get(f"/update?field1=1&api_key={channel.read_key}").status_code == 401
    key = manage.keys_of(channel.channel)[0]
    manage.revoke_key(key)
    response = client.get(f"/update?field1=1&api_key={channel.write_key}")
    assert response.status_code == 401 and response.text == "0"
    assert readback.readings(channel.id) == []


@pytest.mark.parametrize("content", ["field1=nan", "field9=1", "", "field1=1&created_at=never"])
def test_a_bad_key_is_refused_before_bad_content(
    client: FlaskClient, channel: ChannelKeys, content: str
) -> None:
    """/update parses its values before the write, yet the key still answers first (#3)."""
    wrong = client.get(f"/update?{content}&api_key=NOTAKEY000000000")
    assert wrong.status_code == 401 and wrong.text == "0"
    manage.add_device(channel.channel, "esp-1")
    other = client.get(f"/update?{content}&mac=esp-2&api_key={channel.write_key}")
    assert other.status_code == 403 and other.text == "0"
    allowed = client.get(f"/update?{content}&mac=esp-1&api_key={channel.write_key}")
    assert allowed.status_code == 200 and allowed.text == "0"  # the content's refusal
    assert readback.readings(channel.id) == []


def test_device_allow_list_applies_to_mac_parameter(client: FlaskClient, channel: ChannelKeys) -> None:
    manage.add_device(channel.channel, "AA:BB:CC:DD:EE:FF")
    ok = client.get(f"/update?field1=1&mac=aa:bb:cc:dd:ee:ff&api_key={channel.write_key}")
    other = client.get(f"/update?field1=2&mac=11:22:33:44:55:66&api_key={channel.write_key}")
    none = client.get(f"/update?field1=3&api_key={channel.write_key}")
    assert ok.text == "1" and other.status_code == 403 and none.status_code == 403
    assert readback.values_by_field(channel.id) == {"f1": [1.0]}


@pytest.mark.parametrize(
    "query",
    [
        "field1=nan",
        "field1=inf",
        "field9=1",
        "",
        "status=" + "x" * 300,
        "field1=1&lat=91",
        "created_at=yesterday",
    ],
)
def test_refused_updates_answer_zero_and_store_nothing(
    client: FlaskClient, channel: ChannelKeys, query: str
) -> None:
    response = client.get(f"/update?{query}&api_key={channel.write_key}")
    assert response.status_code == 200 and response.text == "0"
    assert response.headers["X-Fieldstation-Error"]
    assert readback.entries(channel.id) == []


def test_rate_limit_answers_zero(client: FlaskClient, channel: ChannelKeys) -> None:
    manage.update_channel(channel.channel, min_interval_s=15)
    first = client.get(f"/update?field1=1&api_key={channel.write_key}")
    second = client.get(f"/update?field1=2&api_key={channel.write_key}")
    assert (first.text, second.text) == ("1", "0")
    assert readback.values_by_field(channel.id) == {"f1": [1.0]}


def test_created_at_with_timezone_and_xml(client: FlaskClient, channel: ChannelKeys) -> None:
    query = urlencode(
        {
            "field1": "1",
            "created_at": "2024-06-01 12:00:00",
            "timezone": "Europe/Berlin",
            "api_key": channel.write_key,
        }
    )
    response = client.get(f"/update.xml?{query}")
    assert response.status_code == 200 and '<entry-id type="integer">1</entry-id>' in response.text
    assert '<created-at type="dateTime">2024-06-01T10:00:00Z</created-at>' in response.text


# -- bulk updates ----------------------------------------------------------------------------


def test_bulk_json_absolute_and_relative(client: FlaskClient, channel: ChannelKeys) -> None:
    absolute = {
        "write_api_key": channel.write_key,
        "updates": [
            {"created_at": "2018-01-30 10:26:02 -0500", "field1": "1.0", "field2": 2, "status": "ok"},
            {"created_at": 1517325963, "field1": 1.5, "latitude": 51.5, "longitude": 0.1, "elevation": 20},
        ],
    }
    response = client.post(f"/channels/{channel.id}/bulk_update.json", json=absolute)
    assert response.status_code == 202 and response.json == {"success": True}
    relative = {
        "write_api_key": channel.write_key,
        "updates": [{"delta_t": 0, "field1": 7}, {"delta_t": 4, "field1": 8}],
    }
    assert client.post(f"/channels/{channel.id}/bulk_update.json", json=relative).status_code == 202
    stored = readback.entries(channel.id)
    assert stored[0][1] == 1_517_325_962_000_000 and stored[1][1] == 1_517_325_963_000_000
    assert stored[3][1] - stored[2][1] == 4_000_000
    assert stored[1][3:] == (51.5, 0.1, 20.0)
    assert readback.values_by_field(channel.id)["f1"] == [1.0, 1.5, 7.0, 8.0]


def test_bulk_csv(client: FlaskClient, channel: ChannelKeys) -> None:
    form = {
        "write_api_key": channel.write_key,
        "time_format": "absolute",
        "updates": "2018-01-30 10:26:02 -0500,1,2,,,,,,,51.5,0.1,20,status, with comma|1517325963,3",
    }
    assert client.post(f"/channels/{channel.id}/bulk_update.csv", data=form).status_code == 202
    rel = {"write_api_key": channel.write_key, "time_format": "relative", "updates": "0,1|10,2|5,3"}
    assert client.post(f"/channels/{channel.id}/bulk_update.csv", data=rel).status_code == 202
    stored = readback.entries(channel.id)
    assert stored[0][2] == "status, with comma" and stored[0][3:] == (51.5, 0.1, 20.0)
    assert [b[1] - a[1] for a, b in itertools.pairwise(stored[2:])] == [10_000_000, 5_000_000]


@pytest.mark.parametrize(
    ("body", "status"),
    [
        ({"updates": [{"delta_t": 1, "field1": 1}]}, 401),
        ({"write_api_key": "WRONG", "updates": [{"delta_t": 1, "field1": 1}]}, 401),
        ({"updates": []}, 400),
        ({"updates": [{"field1": 1}]}, 400),
        ({"updates": [{"created_at": 1, "delta_t": 1, "field1": 1}]}, 400),
        ({"updates": [{"created_at": "2020-01-01", "field1": 1}, {"delta_t": 3, "field1": 2}]}, 400),
        ({"updates": [{"created_at": "2020-01-01", "field1": [1]}]}, 400),
        ({"updates": [{"created_at": "2020-01-01", "bogus": 1}]}, 400),
        ({"updates": "nope"}, 400),
    ],
)
def test_bulk_json_errors_are_thingspeak_shaped(
    client: FlaskClient, channel: ChannelKeys, body: dict[str, object], status: int
) -> None:
    if status == 400:
        body = {"write_api_key": channel.write_key, **body}
    response = client.post(f"/channels/{channel.id}/bulk_update.json", json=body)
    assert response.status_code == status
    assert response.json["status"] == str(status) and response.json["error"]["details"]
    assert readback.entries(channel.id) == []


def test_bulk_key_of_another_channel_is_refused(client: FlaskClient, channel: ChannelKeys) -> None:
    other = make_channel(channel.channel.owner, name="other")
    body = {"write_api_key": other.write_key, "updates": [{"delta_t": 0, "field1": 1}]}
    assert client.post(f"/channels/{channel.id}/bulk_update.json", json=body).status_code == 401


def test_bulk_is_all_or_nothing(client: FlaskClient, channel: ChannelKeys) -> None:
    body = {
        "write_api_key": channel.write_key,
        "updates": [{"created_at": 1600000000, "field1": 1}, {"created_at": 1600000001, "field1": "nan"}],
    }
    assert client.post(f"/channels/{channel.id}/bulk_update.json", json=body).status_code == 400
    assert readback.entries(channel.id) == []


# -- properties ------------------------------------------------------------------------------

_value = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32).map(repr),
    st.integers(-(10**6), 10**6).map(str),
    st.text(st.characters(blacklist_categories=["Cs"]), max_size=300),
)
_params = st.dictionaries(
    st.sampled_from(
        ["field1", "field2", "field8", "field9", "status", "lat", "long", "elevation", "created_at"]
    ),
    _value,
    max_size=5,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=_params)
def test_update_stores_exactly_what_was_sent_or_nothing(app: Flask, values: dict[str, str]) -> None:
    ch = make_channel(make_user(f"u{next(_names)}").user, fields=[f"f{i}" for i in range(1, 9)])
    response = app.test_client().post("/update.json", data={**values, "api_key": ch.write_key})
    stored = readback.entries(ch.id)
    if response.text == "0" or response.status_code != 200:
        assert response.status_code < 500 and stored == []
        return
    body = response.json
    assert len(stored) == 1 and body["entry_id"] == stored[0][0]
    sent = {k: v.strip() for k, v in values.items() if k.startswith("field") and v.strip()}
    got = {f"field{name[1:]}": v for name, v in readback.values_by_field(ch.id).items()}
    assert set(got) == set(sent)
    for name, text in sent.items():
        (value,) = got[name]
        assert value == text if isinstance(value, str) else value == float(text)
    if values.get("status", "").strip():
        assert stored[0][2] == values["status"]


_bulk_value = st.one_of(
    st.none(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(10**6), 10**6),
    st.text(max_size=40),
    st.booleans(),
    st.lists(st.integers(), max_size=1),
)
_bulk_update = st.dictionaries(
    st.sampled_from(["created_at", "delta_t", "field1", "field2", "field9", "status", "latitude", "bogus"]),
    _bulk_value,
    max_size=4,
)


def _stored_values(channel_id: int) -> list[tuple[str, float | str]]:
    return sorted(
        ((name, value if text is None else text) for name, _, value, text in readback.readings(channel_id)),
        key=repr,
    )


def _expected_value(raw: object) -> float | str:
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, int | float):
        return float(raw)
    text = str(raw).strip()
    try:
        return float(text)
    except ValueError:
        return text


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(updates=st.lists(_bulk_update, max_size=4))
def test_bulk_json_stores_exactly_what_was_sent_or_nothing(
    app: Flask, updates: list[dict[str, object]]
) -> None:
    ch = make_channel(make_user(f"u{next(_names)}").user, fields=[f"f{i}" for i in range(1, 9)])
    body = {"write_api_key": ch.write_key, "updates": updates}
    response = app.test_client().post(f"/channels/{ch.id}/bulk_update.json", data=json.dumps(body))
    if response.status_code != 202:
        assert 400 <= response.status_code < 500 and readback.entries(ch.id) == []
        return
    # Updates at the same time merge; the later value of a field wins.
    by_time: dict[object, dict[str, object]] = {}
    offsets, total = [], 0
    for update in reversed(updates):  # relative times: the last update is "now"
        offsets.append(total)
        if update.get("delta_t") is not None:
            total -= round(float(update["delta_t"]) * 1_000_000)  # type: ignore[arg-type]
    offsets.reverse()
    for index, update in enumerate(updates):
        relative = update.get("delta_t") is not None
        when = ("rel", offsets[index]) if relative else ts_time(update["created_at"])  # type: ignore[arg-type]
        for key in ("field1", "field2"):
            if update.get(key) is not None and update.get(key) != "":
                by_time.setdefault(when, {})[key] = update[key]
    expected = sorted(
        ((f"f{key[-1]}", _expected_value(v)) for fields in by_time.values() for key, v in fields.items()),
        key=repr,
    )
    assert _stored_values(ch.id) == expected


_cell = st.one_of(
    st.just(""),
    st.integers(-100, 100).map(str),
    st.text(st.characters(blacklist_characters=",|", blacklist_categories=("Cs",)), max_size=8),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.tuples(st.integers(0, 10**6), _cell, _cell, _cell), min_size=1, max_size=4),
    relative=st.booleans(),
)
@example(rows=[(1, "", "", "0\r")], relative=False)  # found by hypothesis: the trailing newline rule
def test_bulk_csv_stores_exactly_what_was_sent_or_nothing(
    app: Flask, rows: list[tuple[int, str, str, str]], relative: bool
) -> None:
    ch = make_channel(make_user(f"u{next(_names)}").user, fields=[f"f{i}" for i in range(1, 9)])
    if not relative:
        rows = [(1_600_000_000 + i * 7, a, b, s) for i, (_, a, b, s) in enumerate(rows)]
    updates = "|".join(f"{t},{a},{b},,,,,,,,,,{s}" for t, a, b, s in rows)
    form = {
        "write_api_key": ch.write_key,
        "time_format": "relative" if relative else "absolute",
        "updates": updates,
    }
    response = app.test_client().post(f"/channels/{ch.id}/bulk_update.csv", data=form)
    if response.status_code != 202:
        assert 400 <= response.status_code < 500 and readback.entries(ch.id) == []
        return
    stored = readback.entries(ch.id)
    assert len(stored) == len({e[1] for e in stored})
    if not relative or all(t > 0 for t, *_ in rows[1:]):
        assert len(stored) == len(rows)
        expected = sorted(
            ((f"f{n}", _expected_value(v)) for _, a, b, _ in rows for n, v in ((1, a), (2, b)) if v.strip()),
            key=repr,
        )
        assert _stored_values(ch.id) == expected
        statuses = [s for *_, s in rows]
        # The body's trailing newline is dropped (the 1.3.x Arduino library appends one): here it
        # ends the last update's status.
        statuses[-1] = statuses[-1].rstrip("\r\n")
        assert [e[2] for e in stored] == [s or None for s in statuses]


def test_head_does_not_write(client: FlaskClient, channel: ChannelKeys) -> None:
    response = client.head(f"/update?field1=1&api_key={channel.write_key}")
    seed = client.head(f"/update/API_key={channel.write_key}/mac=aa/field=1/data=1")
    assert response.status_code == 200 and seed.status_code == 400
    assert readback.entries(channel.id) == []


@pytest.mark.parametrize("path", ["/update", "/update.json", "/update.xml"])
def test_update_at_an_existing_time_says_it_replaced_the_entry(app, flask_only, path: str) -> None:  # type: ignore[no-untyped-def]
    """The body stays ThingSpeak's (the entry's id); a header tells a replaced entry from a new one."""
    keys = make_channel(make_user("rita").user, "r")
    for twin in (app, flask_only):  # the device hot path and Flask answer alike
        client = twin.test_client()
        at = "2026-12-05 01:00:00" if twin is app else "2026-12-05 02:00:00"
        first = client.post(path, data={"api_key": keys.write_key, "field1": 1, "created_at": at})
        assert first.status_code == 200 and "X-Fieldstation-Replaced" not in first.headers
        again = client.post(path, data={"api_key": keys.write_key, "field1": 2, "created_at": at})
        assert again.status_code == 200 and again.headers["X-Fieldstation-Replaced"] == "1"
        if path == "/update":
            assert again.get_data(as_text=True) == first.get_data(as_text=True)  # the same entry's id
        later = client.post(path, data={"api_key": keys.write_key, "field1": 3})
        assert "X-Fieldstation-Replaced" not in later.headers
