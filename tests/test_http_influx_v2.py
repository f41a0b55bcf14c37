"""InfluxDB 1.8's 2.x compatibility API with the real ``influxdb-client`` package (v2 API)."""

from __future__ import annotations

import gzip

import pytest
from flask import Flask
from flask.testing import FlaskClient
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from tests import readback
from tests.factories import ChannelKeys, make_channel, make_user
from tests.liveserver import uwsgi_server
from tests.test_http_influx_write import influx_client


@pytest.fixture
def channel(app: Flask) -> ChannelKeys:
    return make_channel(make_user().user, name="sensors", fields=["note"])


def test_influxdb_client_v2_writes_and_reads_back(app: Flask, channel: ChannelKeys) -> None:
    with uwsgi_server(app) as url:
        with InfluxDBClient(url=url, token=f"alice:{channel.write_key}", org="-") as client:
            assert client.health().status == "pass"
            writer = client.write_api(write_options=SYNCHRONOUS)
            writer.write(
                "sensors/autogen", "-", "climate,room=lab temperature=21.5 1577836800", WritePrecision.S
            )
            writer.write("sensors", "-", "climate,room=lab temperature=22.5 1577836860000", WritePrecision.MS)
        with InfluxDBClient(url=url, token=channel.write_key, org="-", enable_gzip=True) as client:
            client.write_api(write_options=SYNCHRONOUS).write(
                "sensors/", "-", "climate,room=hall temperature=19i"
            )
        with InfluxDBClient(url=url, token="alice:WRONGKEY0000000", org="-") as client:
            with pytest.raises(ApiException) as wrong:
                client.write_api(write_options=SYNCHRONOUS).write("sensors", "-", "climate temperature=1")
        rows = list(
            influx_client(url, channel.read_key)
            .query('SELECT "temperature" FROM "climate" WHERE "room" = \'lab\'')
            .get_points()
        )
    assert wrong.value.status == 401
    assert rows == [
        {"time": "2020-01-01T00:00:00Z", "temperature": 21.5},
        {"time": "2020-01-01T00:01:00Z", "temperature": 22.5},
    ]
    assert readback.values_by_field(channel.id)["climate,room=hall temperature"] == [19.0]


def _post(client: FlaskClient, query: str, body: bytes, key: str, **headers: str) -> tuple[int, object]:
    response = client.post(
        f"/api/v2/write?{query}", data=body, headers={"Authorization": f"Token {key}", **headers}
    )
    return response.status_code, response.json


def test_answers_are_writes(client: FlaskClient, channel: ChannelKeys, app: Flask) -> None:
    key = channel.write_key
    assert _post(client, "bucket=sensors&org=x&precision=us", b"m v=1 1500000", key) == (204, None)
    status, body = _post(client, "bucket=sensors", b"m v=2 2000000000\nm v= 3\n", key)
    assert status == 400 and isinstance(body, dict)
    assert body["error"].startswith("partial write: unable to parse 'm v= 3' (line 2)")
    assert _post(client, "bucket=sensors", b"m v=1", "nope") == (401, {"error": "authorization failed"})
    assert _post(client, "bucket=other/autogen", b"m v=1", key) == (
        404,
        {"error": 'database not found: "other"'},
    )
    assert _post(client, "bucket=", b"m v=1", key)[0] == 404
    assert _post(client, "bucket=sensors&precision=h", b"m v=1", key)[0] == 400
    zipped = gzip.compress(b"m v=5 5000000000\n")
    assert _post(client, "bucket=sensors", zipped, key, **{"Content-Encoding": "gzip"}) == (204, None)
    app.config["MAX_CONTENT_LENGTH"] = 100
    assert _post(client, "bucket=sensors", b"m v=1\n" * 100, key)[0] == 413
    assert readback.values_by_field(channel.id) == {"m v": [1.0, 2.0, 5.0]}
    assert [ts for _, ts, _, _ in readback.readings(channel.id)] == [1_500_000, 2_000_000, 5_000_000]


def test_health_and_flux(client: FlaskClient) -> None:
    health = client.get("/health")
    assert health.status_code == 200 and health.json["status"] == "pass" and health.json["name"] == "influxdb"
    flux = client.post("/api/v2/query?org=x", data='from(bucket: "sensors")')
    assert flux.status_code == 501 and "/query" in flux.json["message"]
