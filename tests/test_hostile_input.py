"""Inputs an HTTP fuzzer found answered with a 500, a dropped connection or a half-made change.

Each is now a clear 4xx that stores nothing (or, for a display setting, is ignored).
"""

from __future__ import annotations

import http.client
import io
import json
from urllib.parse import quote, urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fieldstation import store
from fieldstation.points import Batch, Entry
from tests import readback
from tests.factories import PASSWORD, ChannelKeys, make_user
from tests.liveserver import uwsgi_server

HUGE = "9" * 5000  # int() refuses strings of more than 4,300 digits


pytestmark = pytest.mark.channel(public=True)


@pytest.fixture
def channel(channel: ChannelKeys) -> ChannelKeys:
    """The shared channel, public, with one entry."""
    keys = channel
    store.write(Batch(keys.id, [Entry({1: 20.0, 2: 50.0})]))
    return keys


@pytest.fixture
def web(app: Flask, channel: ChannelKeys) -> FlaskClient:
    """Alice, signed in to the dashboard."""
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    response = client.post("/dashboard/login", data={"username": "alice", "password": PASSWORD})
    assert response.status_code == 302
    return client


@pytest.mark.parametrize("zone", ["America", "Etc", "a" * 300])
def test_zone_names_that_are_folders_or_too_long_are_400(
    client: FlaskClient, channel: ChannelKeys, zone: str
) -> None:
    c = channel.id
    for path, args in [
        (f"/channels/{c}/feeds.json", {"timezone": zone}),
        (f"/api/v1/channels/{c}/readings", {"tz": zone}),
        (f"/api/v1/channels/{c}/buckets", {"tz": zone, "every": "1h"}),
        (f"/channels/{c}/charts/1", {"tz": zone}),
    ]:
        response = client.get(path, query_string={**args, "api_key": channel.read_key})
        assert 400 <= response.status_code < 500, (path, response.status_code)
    q = f"SELECT mean(temperature) FROM weather WHERE time > now() - 1d GROUP BY time(1h) tz('{zone}')"
    response = client.get("/query", query_string={"db": "weather", "q": q, "p": channel.read_key})
    assert "time zone" in json.dumps(
        response.get_json()
    )  # a statement's error, in its result (InfluxDB's way)
    before = readback.entries(c)
    response = client.get(
        "/update",
        query_string={
            "api_key": channel.write_key,
            "field1": "1",
            "created_at": "2024-01-01",
            "timezone": zone,
        },
    )
    assert _refused(response)
    assert readback.entries(c) == before


def _refused(response: object) -> bool:
    """ThingSpeak's refusal of an update: 200 and ``0``; the reason is in a header of our own."""
    return (
        response.status_code == 200  # type: ignore[attr-defined]
        and response.text == "0"  # type: ignore[attr-defined]
        and "X-Fieldstation-Error" in response.headers  # type: ignore[attr-defined]
    )


def test_a_bad_zone_cookie_is_ignored(web: FlaskClient, channel: ChannelKeys) -> None:
    web.set_cookie("fs_tz", "America")
    assert web.get(f"/dashboard/channels/{channel.id}").status_code == 200


def test_numbers_of_thousands_of_digits_are_refused_or_ignored(
    web: FlaskClient, channel: ChannelKeys
) -> None:
    c, key = channel.id, channel.write_key
    before = readback.entries(c)
    assert web.get(f"/update/API_key={key}/mac=aa/field={HUGE}/data=1").status_code == 400
    assert web.post(f"/update/API_key={key}/mac=aa/field={HUGE}/data=1").status_code == 400
    response = web.post(f"/write?db={HUGE}", data=b"m v=1", headers={"Authorization": f"Token {key}"})
    assert response.status_code == 404 and response.get_json()["error"].startswith("database not found")
    assert readback.entries(c) == before
    for args in ({"height": HUGE}, {"width": HUGE}, {"results": HUGE}):
        assert web.get(f"/channels/{c}/charts/1", query_string=args).status_code == 200, args
    for args in ({"width": HUGE}, {"wide": HUGE}, {"pair": f"1,{HUGE}"}, {"results": HUGE}):
        assert web.get(f"/dashboard/channels/{c}", query_string=args).status_code == 200, args
    upload = {"file": (io.BytesIO(f"time,field{HUGE}\n2024-01-01T00:00:00Z,1\n".encode()), "x.csv")}
    response = web.post(f"/dashboard/channels/{c}/import", data=upload, content_type="multipart/form-data")
    assert response.status_code == 400 and "not fields of this channel" in response.text
    assert readback.entries(c) == before


def test_deeply_nested_bodies_and_queries_are_400(client: FlaskClient, channel: ChannelKeys) -> None:
    owner = make_user("bob")
    response = client.post(
        "/api/v1/channels", data="[" * 100_000, headers={**owner.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "invalid_json"
    where = "(" * 5000 + "time > 0" + ")" * 5000
    response = client.get(
        "/query",
        query_string={"db": "weather", "q": f"SELECT * FROM weather WHERE {where}", "p": channel.read_key},
    )
    assert response.status_code == 400 and "nested deeper" in response.get_json()["error"]
    shallow = "(((time > 0)))"
    response = client.get(
        "/query",
        query_string={"db": "weather", "q": f"SELECT * FROM weather WHERE {shallow}", "p": channel.read_key},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "entry",
    [
        {"values": {"1": "\ud800"}},
        {"values": {"1": 1}, "status": "\udfff"},
        {"values": {"1": "a\x01b"}},
        {"values": {"1": 1}, "status": "bell\x07"},
    ],
)
def test_text_that_cannot_be_stored_or_answered_as_xml_is_400(
    client: FlaskClient, channel: ChannelKeys, entry: dict[str, object]
) -> None:
    before = readback.entries(channel.id)
    body = json.dumps(entry).encode()  # \ud800 stays an escape: valid JSON, a lone surrogate once decoded
    headers = {"Authorization": f"Bearer {channel.write_key}", "Content-Type": "application/json"}
    response = client.post(f"/api/v1/channels/{channel.id}/entries", data=body, headers=headers)
    assert response.status_code == 400, response.text
    bulk = {
        "write_api_key": channel.write_key,
        "updates": [{"created_at": "2024-01-01T00:00:00Z", **_flat(entry)}],
    }
    response = client.post(
        f"/channels/{channel.id}/bulk_update.json", data=json.dumps(bulk), content_type="application/json"
    )
    assert response.status_code == 400, response.text
    assert readback.entries(channel.id) == before


def _flat(entry: dict[str, object]) -> dict[str, object]:
    """A JSON API entry as a ThingSpeak bulk update."""
    values = entry["values"]
    assert isinstance(values, dict)
    return {f"field{k}": v for k, v in values.items()} | (
        {"status": entry["status"]} if "status" in entry else {}
    )


def test_channel_names_and_descriptions_refuse_control_characters(
    client: FlaskClient, channel: ChannelKeys
) -> None:
    owner = make_user("bob")
    for body in (
        {"name": "\x00x"},
        {"name": "ok", "description": "a\x01"},
        {"name": "ok", "elevation": 1e400},
    ):
        text = json.dumps(body).replace("1e+400", "Infinity")
        response = client.post(
            "/api/v1/channels", data=text, headers={**owner.headers, "Content-Type": "application/json"}
        )
        assert response.status_code == 400, (body, response.text)
    assert client.get("/api/v1/channels", headers=owner.headers).get_json() == []


def test_update_xml_answers_are_well_formed(client: FlaskClient, channel: ChannelKeys) -> None:
    from xml.dom import minidom

    refused = client.get(f"/update.xml?api_key={channel.write_key}&field1=1&status=%3Cx%3E%01")
    assert _refused(refused) and "control characters" in refused.headers["X-Fieldstation-Error"]
    stored = client.get(f"/update.xml?api_key={channel.write_key}&field1=1&status=%3Cx%3E%09tab")
    assert stored.status_code == 200
    assert minidom.parseString(stored.data).getElementsByTagName("status")[0].firstChild.data == "<x>\ttab"
    status = client.get(f"/channels/{channel.id}/status.xml")
    assert status.status_code == 200 and minidom.parseString(status.data)


def test_bulk_deltas_that_add_up_to_before_1900_are_400(client: FlaskClient, channel: ChannelKeys) -> None:
    before = readback.entries(channel.id)
    updates = [{"delta_t": 315_360_000, "field1": i} for i in range(250)]  # 250 x 10 years
    body = {"write_api_key": channel.write_key, "updates": updates}
    response = client.post(f"/channels/{channel.id}/bulk_update.json", json=body)
    assert response.status_code == 400 and "out of range" in response.text
    csv = "\n".join(["315360000,1"] * 20)
    response = client.post(
        f"/channels/{channel.id}/bulk_update.csv",
        data={"write_api_key": channel.write_key, "time_format": "relative", "updates": csv},
    )
    assert response.status_code == 400
    assert readback.entries(channel.id) == before
    fine = [{"delta_t": 60, "field1": i} for i in range(3)]
    response = client.post(
        f"/channels/{channel.id}/bulk_update.json", json={"write_api_key": channel.write_key, "updates": fine}
    )
    assert response.status_code == 202


def test_bytes_that_are_not_utf8_are_refused_not_replaced(client: FlaskClient, channel: ChannelKeys) -> None:
    before = readback.entries(channel.id)
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="api_key"\r\n\r\n'
        + channel.write_key.encode()
        + b'\r\n--xyz\r\nContent-Disposition: form-data; name="field1"\r\n\r\n1'
        b'\r\n--xyz\r\nContent-Disposition: form-data; name="status"\r\n\r\nab\xff\xfecd\r\n--xyz--\r\n'
    )
    response = client.post("/update.json", data=body, content_type="multipart/form-data; boundary=xyz")
    assert _refused(response) and "UTF-8" in response.headers["X-Fieldstation-Error"]
    for data in (b"\xff", b"\xed\xa0\x80"):  # a lone byte; a surrogate's three bytes
        path = f"/update/API_key={channel.write_key}/mac=aa:bb/field=1/data=".encode() + data
        # PATH_INFO as servers give it (the request's bytes as latin-1); the test client's own is lossy
        response = client.get("/update/x", environ_overrides={"PATH_INFO": path.decode("latin-1")})
        assert response.status_code == 400, data
    assert readback.entries(channel.id) == before
    fine = client.get(f"/update/API_key={channel.write_key}/mac=aa:bb/field=1/data={quote('sonnig ☀')}")
    assert fine.status_code == 200 and readback.values_by_field(channel.id)["temperature"][-1] == "sonnig ☀"


def test_a_dashboard_edit_refused_part_way_keeps_nothing(web: FlaskClient, channel: ChannelKeys) -> None:
    c = channel.id
    form = {
        "name": "weather-renamed",
        "description": "CHANGED",
        "public": "",
        "latitude": "45",
        "fields-0-number": "1",
        "fields-0-name": "temperature",
        "fields-0-unit": "C",
        "fields-1-number": "2",
        "fields-1-name": "temperature",  # clashes with field 1
    }
    response = web.post(f"/dashboard/channels/{c}/edit", data=form)
    assert response.status_code == 409
    page = web.get(f"/dashboard/channels/{c}/edit").text
    assert 'value="weather"' in page and "CHANGED" not in page and 'value="C"' not in page
    assert readback.field_names(c) == ["temperature", "humidity"]
    form["fields-1-name"] = "humidity"
    assert web.post(f"/dashboard/channels/{c}/edit", data=form).status_code == 302
    assert 'value="weather-renamed"' in web.get(f"/dashboard/channels/{c}/edit").text


def test_bad_locations_in_a_csv_import_are_refused(web: FlaskClient, channel: ChannelKeys) -> None:
    before = readback.entries(channel.id)
    upload = {"file": (io.BytesIO(b"time,temperature,latitude\n2024-01-01T00:00:00Z,1,95\n"), "x.csv")}
    response = web.post(
        f"/dashboard/channels/{channel.id}/import", data=upload, content_type="multipart/form-data"
    )
    assert response.status_code == 400 and "latitude must be between -90 and 90" in response.text
    assert readback.entries(channel.id) == before


@pytest.mark.parametrize(
    "chunks",
    [
        b"1e;foo=bar\r\nchunky v=5 1700000005000000000\r\n0\r\n\r\n",  # a chunk extension
        b"zz\r\nchunky v=5 1700000005000000000\r\n0\r\n\r\n",  # not a size
        b"ffffffffffffffff\r\nchunky v=5\r\n0\r\n\r\n",  # a size beyond any body
    ],
    ids=["extension", "bad-size", "huge-size"],
)
def test_chunked_bodies_uwsgi_cannot_decode_are_400(app: Flask, channel: ChannelKeys, chunks: bytes) -> None:
    """Telegraf's chunked /write under uWSGI: never a dropped connection, never a 204 for lost points."""
    with uwsgi_server(app) as url:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
        conn.putrequest("POST", "/write?db=weather")
        conn.putheader("Authorization", f"Token {channel.write_key}")
        conn.putheader("Transfer-Encoding", "chunked")
        conn.endheaders()
        conn.send(chunks)
        reply = conn.getresponse()
        body = reply.read()
        conn.close()
    assert reply.status == 400, body
    assert json.loads(body)["error"].startswith("chunked body is malformed")
    assert "chunky" not in readback.field_names(channel.id)


def test_nul_in_free_text_and_names_is_400_not_a_database_error(app: Flask, channel: ChannelKeys) -> None:
    """PostgreSQL's text cannot hold NUL: each of these was a 500 there."""
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    owner = make_user("bob")
    made = client.post("/api/v1/channels", json={"name": "b"}, headers=owner.headers)
    base = made.headers["Location"]
    for method, path, body in [
        ("post", f"{base}/fields", {"name": "ok", "unit": "a\x00b"}),
        ("patch", f"{base}/fields/1", {"unit": "\x00"}),
        ("post", f"{base}/keys", {"kind": "read", "label": "a\x00b"}),
        ("post", f"{base}/devices", {"device": "d1", "label": "a\x00b"}),
    ]:
        response = getattr(client, method)(path, json=body, headers=owner.headers)
        assert response.status_code == 400 and "control characters" in response.text, (path, response.text)
    assert [f["name"] for f in client.get(f"{base}/fields", headers=owner.headers).get_json()] == ["field1"]
    login = client.post("/dashboard/login", data={"username": "a\x00b", "password": "whatever-it-is"})
    assert login.status_code == 401 and "Wrong username or password" in login.text
    answer = client.get(
        "/query", query_string={"db": "a\x00b", "q": "SHOW MEASUREMENTS", "p": channel.read_key}
    )
    assert "database not found" in answer.text
