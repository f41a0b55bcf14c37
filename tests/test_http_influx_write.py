"""InfluxDB 1.x writes with the real `influxdb` client, a Telegraf-shaped request, and properties."""

from __future__ import annotations

import base64
import gzip
import http.client
import itertools
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from influxdb import InfluxDBClient
from influxdb.exceptions import InfluxDBClientError

from fieldstation import lineprotocol as lp
from fieldstation import manage
from fieldstation.extensions import db
from tests import readback
from tests.factories import ChannelKeys, make_channel, make_user
from tests.liveserver import SERVERS, uwsgi_server

_names = itertools.count()


pytestmark = pytest.mark.channel(name="sensors", fields=["note"])


def basic(key: str, user: str = "alice") -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()}


def influx_client(url: str, key: str, **options: object) -> InfluxDBClient:
    parts = urlsplit(url)
    return InfluxDBClient(
        host=parts.hostname, port=parts.port, username="alice", password=key, database="sensors", **options
    )


# -- the influxdb client ---------------------------------------------------------------------


def test_influxdb_client_writes_and_data_is_stored(app: Flask, channel: ChannelKeys) -> None:
    with uwsgi_server(app) as url:
        client = influx_client(url, channel.write_key)
        assert client.ping() == "1.8.10"
        point = {
            "measurement": "climate",
            "tags": {"device": "esp01", "room": "lab"},
            "time": "2020-01-01T00:00:00Z",
            "fields": {"temperature": 21.5, "humidity": 55, "note": "a b", "ok": True},
        }
        assert client.write_points([point])
        later = {"measurement": "climate", "time": 1577836860, "fields": {"temperature": 22.0}}
        assert client.write_points(
            [later], time_precision="s", retention_policy="autogen", tags={"site": "x"}
        )
        zipped = influx_client(url, channel.write_key, gzip=True)
        assert zipped.write_points(["m v=1i 1577836800000000000"], protocol="line")
        # Read back through InfluxQL (/query), as the client's user would.
        rows = list(client.query('SELECT "temperature" FROM "climate" WHERE "room" = \'lab\'').get_points())
    assert rows == [{"time": "2020-01-01T00:00:00Z", "temperature": 21.5}]
    assert readback.values_by_field(channel.id) == {
        "climate,device=esp01,room=lab humidity": [55.0],
        "climate,device=esp01,room=lab note": ["a b"],
        "climate,device=esp01,room=lab ok": [1.0],
        "climate,device=esp01,room=lab temperature": [21.5],
        "m v": [1.0],
        "climate,site=x temperature": [22.0],
    }
    times = {ts for _, ts, _, _ in readback.readings(channel.id)}
    assert times == {1_577_836_800_000_000, 1_577_836_860_000_000}


def test_influxdb_client_errors(app: Flask, channel: ChannelKeys) -> None:
    with uwsgi_server(app) as url:
        with pytest.raises(InfluxDBClientError) as wrong_key:
            influx_client(url, "WRONGKEY00000000").write_points(["m v=1"], protocol="line")
        with pytest.raises(InfluxDBClientError) as no_db:
            influx_client(url, channel.write_key).write_points(["m v=1"], protocol="line", database="nope")
        with pytest.raises(InfluxDBClientError) as bad_line:
            influx_client(url, channel.write_key).write_points(["m v=1", "m v="], protocol="line")
    assert wrong_key.value.code == 401 and "authorization failed" in wrong_key.value.content
    assert no_db.value.code == 404 and 'database not found: \\"nope\\"' in no_db.value.content
    assert bad_line.value.code == 400 and "partial write" in bad_line.value.content
    assert readback.values_by_field(channel.id) == {"m v": [1.0]}


# -- Telegraf: chunked, gzipped, text/plain (docs/clients.md §4) ---------------------------------


@pytest.fixture(params=list(SERVERS))
def server(request: pytest.FixtureRequest, app: Flask) -> Iterator[str]:
    start = SERVERS[request.param]
    with start(app) as url:
        yield url


def telegraf_post(url: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    chunks = iter([body[:7], body[7:100], body[100:]])
    conn.request("POST", path, body=chunks, headers=headers, encode_chunked=True)
    response = conn.getresponse()
    result = response.status, response.read()
    conn.close()
    return result


def test_telegraf_request(server: str, channel: ChannelKeys) -> None:
    lines = "".join(
        f"cpu,host=h1 usage_idle={99 - i}.5,usage_user=0.{i} {1704110400 + i}000000000\n" for i in range(50)
    )
    headers = {
        "Content-Type": "text/plain; charset=utf-8",
        "User-Agent": "Telegraf/1.30.0 Go/1.22.1",
        "Content-Encoding": "gzip",
        "Transfer-Encoding": "chunked",
        **basic(channel.write_key, "telegraf"),
    }
    status, body = telegraf_post(
        server, "/write?db=sensors&rp=autogen", gzip.compress(lines.encode()), headers
    )
    assert (status, body) == (204, b"")
    values = readback.values_by_field(channel.id)
    assert len(values["cpu,host=h1 usage_idle"]) == 50 and values["cpu,host=h1 usage_user"][3] == 0.3
    assert len(readback.entries(channel.id)) == 50


# -- auth, db, limits, bodies ----------------------------------------------------------------


@pytest.mark.parametrize("how", ["basic", "query", "token", "token-user"])
def test_auth_variants(client: FlaskClient, channel: ChannelKeys, how: str) -> None:
    key = channel.write_key
    headers = {
        "basic": basic(key),
        "query": {},
        "token": {"Authorization": f"Token {key}"},
        "token-user": {"Authorization": f"Token alice:{key}"},
    }[how]
    query = f"&u=alice&p={key}" if how == "query" else ""
    response = client.post(f"/write?db=sensors{query}", data=b"m v=1", headers=headers)
    assert response.status_code == 204


@pytest.mark.parametrize(
    ("headers", "status", "error"),
    [
        ({}, 401, "authorization failed"),
        ({"Authorization": "Basic !!!"}, 401, "unable to parse authentication credentials"),
        ({"Authorization": "Token READ"}, 401, "authorization failed"),
    ],
)
def test_auth_failures(
    client: FlaskClient, channel: ChannelKeys, headers: dict[str, str], status: int, error: str
) -> None:
    if headers.get("Authorization") == "Token READ":
        headers = {"Authorization": f"Token {channel.read_key}"}
    response = client.post("/write?db=sensors", data=b"m v=1", headers=headers)
    assert response.status_code == status and response.json == {"error": error}
    assert readback.readings(channel.id) == []


def test_db_by_id_and_missing_db(client: FlaskClient, channel: ChannelKeys) -> None:
    assert (
        client.post(f"/write?db={channel.id}", data=b"m v=1", headers=basic(channel.write_key)).status_code
        == 204
    )
    missing = client.post("/write", data=b"m v=1", headers=basic(channel.write_key))
    assert missing.status_code == 400 and missing.json == {"error": "database is required"}


def test_partial_write_names_rejected_lines(client: FlaskClient, channel: ChannelKeys) -> None:
    body = b"m v=1 1000000000\nm v=nan 2000000000\nm v=3 3000000000\nbroken\n"
    response = client.post("/write?db=sensors", data=body, headers=basic(channel.write_key))
    assert response.status_code == 400
    error = response.json["error"]
    assert error.startswith("partial write: unable to parse 'm v=nan 2000000000' (line 2): invalid number")
    assert "unable to parse 'broken' (line 4)" in error and error.endswith("dropped=2")
    assert readback.values_by_field(channel.id) == {"m v": [1.0, 3.0]}


def test_all_lines_bad_is_unable_to_parse(client: FlaskClient, channel: ChannelKeys) -> None:
    response = client.post("/write?db=sensors", data=b"nope\n", headers=basic(channel.write_key))
    assert response.status_code == 400 and response.json["error"].startswith("unable to parse 'nope'")
    assert readback.readings(channel.id) == []


def test_field_limit(app: Flask, client: FlaskClient, channel: ChannelKeys) -> None:
    app.config["MAX_FIELDS_PER_CHANNEL"] = 3
    ok = client.post("/write?db=sensors", data=b"m a=1,b=2", headers=basic(channel.write_key))
    over = client.post("/write?db=sensors", data=b"m c=1,d=2 5\nm a=9 5", headers=basic(channel.write_key))
    assert ok.status_code == 204
    assert over.status_code == 400 and "MAX_FIELDS_PER_CHANNEL" in over.json["error"]
    assert readback.field_names(channel.id) == ["note", "m a", "m b"]
    assert readback.values_by_field(channel.id) == {"m a": [1.0], "m b": [2.0]}


def test_existing_field_names_are_reused(client: FlaskClient, channel: ChannelKeys) -> None:
    """A channel made by hand with a field named like the series key receives its values."""
    manage.add_field(channel.channel, "climate,room=lab temperature")
    body = b"climate,room=lab temperature=20.5 1000000000"
    assert client.post("/write?db=sensors", data=body, headers=basic(channel.write_key)).status_code == 204
    assert readback.field_names(channel.id) == ["note", "climate,room=lab temperature"]


def test_field_made_by_another_writer_meanwhile(
    client: FlaskClient, channel: ChannelKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two writers create the same new field: the one that waited for the lock finds it made and uses it.

    Found by killing workers under load (test_crash.py): the second writer's empty
    INSERT became a 500 (NOT NULL constraint failed: fields.channel_id).
    """
    write = "/write?db=sensors&precision=s"
    assert client.post(write, data=b"m v=1 1", headers=basic(channel.write_key)).status_code == 204
    # The looks before the lock see the channel as it was before the other writer's commit.
    real_numbers = manage.field_numbers
    stale = manage.channel_fields(channel.id)
    assert stale is not None
    monkeypatch.setattr(manage, "channel_fields", lambda c: manage.ChannelFields(stale.name, {}))
    looks = itertools.count()
    monkeypatch.setattr(manage, "field_numbers", lambda c: {} if next(looks) == 0 else real_numbers(c))
    reply = client.post(write, data=b"m v=2 2", headers=basic(channel.write_key))
    assert reply.status_code == 204, reply.data
    assert readback.field_names(channel.id) == ["note", "m v"]
    assert readback.values_by_field(channel.id) == {"m v": [1.0, 2.0]}


def test_lines_without_time_share_one_server_stamp(client: FlaskClient, channel: ChannelKeys) -> None:
    body = b"a v=1\nb v=2\n"
    assert client.post("/write?db=sensors", data=body, headers=basic(channel.write_key)).status_code == 204
    assert len(readback.entries(channel.id)) == 1


def test_gzip_bomb_and_bad_gzip(app: Flask, client: FlaskClient, channel: ChannelKeys) -> None:
    app.config["MAX_DECOMPRESSED_LENGTH"] = 100_000
    bomb = gzip.compress(b"m v=1\n" * 1_000_000)
    headers = {**basic(channel.write_key), "Content-Encoding": "gzip"}
    too_big = client.post("/write?db=sensors", data=bomb, headers=headers)
    bad = client.post("/write?db=sensors", data=b"\x1f\x8bnot gzip at all", headers=headers)
    truncated = client.post("/write?db=sensors", data=bomb[:-20], headers=headers)
    assert too_big.status_code == 413 and "error" in too_big.json
    assert bad.status_code == 400 and "gzip" in bad.json["error"]
    assert truncated.status_code in (400, 413)
    assert readback.readings(channel.id) == []


def test_body_over_max_content_length(app: Flask, client: FlaskClient, channel: ChannelKeys) -> None:
    app.config["MAX_CONTENT_LENGTH"] = 1000
    response = client.post("/write?db=sensors", data=b"m v=1\n" * 1000, headers=basic(channel.write_key))
    assert response.status_code == 413 and "error" in response.json


def test_ping_head(client: FlaskClient) -> None:
    response = client.head("/ping")
    assert response.status_code == 204 and response.headers["X-Influxdb-Version"]


# -- properties ------------------------------------------------------------------------------

_key = st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=8).filter(
    # InfluxDB's clients never escape backslashes (lineprotocol.parse_line_slow), so names with them
    # do not read back as written; "time" is refused as a field or tag key, as InfluxDB does.
    lambda s: s.strip(" ") == s and not s.startswith("#") and "\\" not in s and s != "time"
)
_field_value = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False),
    st.integers(-(2**53), 2**53).map(lambda i: f"{i}i"),
    st.text(st.characters(blacklist_categories=["Cs", "Cc"]), max_size=20),
)


def _render(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str) and value.endswith("i") and value[:-1].lstrip("-").isdigit():
        return value
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def _expected(value: object) -> float | str:
    if isinstance(value, float):
        return value
    if isinstance(value, str) and value.endswith("i") and value[:-1].lstrip("-").isdigit():
        return float(value[:-1])
    return str(value)


_line = st.tuples(
    _key,
    st.dictionaries(_key, _key, max_size=2),
    st.dictionaries(_key, _field_value, min_size=1, max_size=3),
    st.integers(0, 10**6),
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(lines=st.lists(_line, min_size=1, max_size=5), garbage=st.lists(st.text(max_size=30), max_size=2))
def test_lines_are_stored_exactly_or_rejected(
    app: Flask, lines: list[tuple[str, dict[str, str], dict[str, object], int]], garbage: list[str]
) -> None:
    ch = make_channel(make_user(f"u{next(_names)}").user, name="sensors")
    text = []
    expected: dict[tuple[str, int], float | str] = {}
    for measurement, tags, fields, second in lines:
        series = lp.escape_measurement(measurement) + "".join(
            f",{lp.escape_key(k)}={lp.escape_key(v)}" for k, v in sorted(tags.items())
        )
        pairs = ",".join(f"{lp.escape_key(k)}={_render(v)}" for k, v in fields.items())
        text.append(f"{series} {pairs} {second}")
        for k, v in fields.items():
            expected[(f"{series} {lp.escape_key(k)}", second * 1_000_000)] = _expected(v)
    rejected = [g for g in (g.replace("\n", " ") for g in garbage) if lp.parse(g).rejected]
    body = "\n".join(text + rejected)
    response = app.test_client().post(
        "/write?db=sensors&precision=s", data=body.encode(), headers=basic(ch.write_key)
    )
    stored = {
        (name, ts): (txt if value is None else value) for name, ts, value, txt in readback.readings(ch.id)
    }
    assert stored == expected
    if rejected:
        assert response.status_code == 400 and response.json["error"].startswith("partial write")
        assert response.json["error"].endswith(f"dropped={len(rejected)}")
    else:
        assert response.status_code == 204


def test_control_characters_in_rejected_lines(client: FlaskClient, channel: ChannelKeys) -> None:
    """A rejected line is quoted in the error body, never in a header as it is (found by hypothesis)."""
    response = client.post("/write?db=sensors", data=b"m v=1\n\r0\n\x0bx\n", headers=basic(channel.write_key))
    assert response.status_code == 400 and "\r0" in response.json["error"]
    assert "\r" not in response.headers["X-Influxdb-Error"]


def test_mac_parameter_checks_the_allow_list(client: FlaskClient, channel: ChannelKeys) -> None:
    manage.add_device(channel.channel, "esp-01")
    ok = client.post("/write?db=sensors&mac=ESP-01", data=b"m v=1", headers=basic(channel.write_key))
    other = client.post("/write?db=sensors&mac=esp-02", data=b"m v=2", headers=basic(channel.write_key))
    assert ok.status_code == 204 and other.status_code == 403 and "error" in other.json
    assert readback.values_by_field(channel.id) == {"m v": [1.0]}


def test_one_point_per_request_is_stored_like_any_write(
    app: Flask, client: FlaskClient, channel: ChannelKeys
) -> None:
    """Server-stamped single points take the single-reading path (one statement on PostgreSQL).

    Several fields and a string value in one point, a new series, the channel's rate
    limit and an unknown key answer and store as any other write.
    """
    headers = basic(channel.write_key)
    first = client.post("/write?db=sensors", data=b'room,at=lab t=21.5,h=40i,note="ok"', headers=headers)
    assert first.status_code == 204
    assert readback.values_by_field(channel.id) == {
        "room,at=lab note": ["ok"],
        "room,at=lab t": [21.5],
        "room,at=lab h": [40.0],
    }
    assert len(readback.entries(channel.id)) == 1
    channel.channel.min_interval_s = 60
    db.session.commit()
    limited = client.post("/write?db=sensors", data=b"room,at=lab t=22", headers=headers)
    assert limited.status_code == 429 and "error" in limited.json
    refused = client.post("/write?db=sensors", data=b"room,at=lab t=23", headers=basic("NOSUCHKEY0000000"))
    assert refused.status_code == 401
    assert readback.values_by_field(channel.id)["room,at=lab t"] == [21.5]


def test_the_channels_own_measurement_writes_to_its_plain_fields(client: FlaskClient, app: Flask) -> None:
    """``weather temperature=…`` on channel weather fills field ``temperature``, which reads as that series.

    Before, it made a field ``weather temperature``, and InfluxQL then showed two fields as
    ``weather``'s ``temperature``.
    """
    from fieldstation import query

    keys = make_channel(make_user("wendy").user, name="weather", fields=["temperature", "humidity"])
    body = (
        b"weather temperature=21.5,humidity=40 1700000000000000000\n"
        b"weather,room=lab temperature=19 1700000060000000000\n"
        b"weather air\\ temp=7 1700000000000000000\n"
        b"garden temperature=12 1700000000000000000\n"
    )
    response = client.post("/write?db=weather&precision=ns", data=body, headers=basic(keys.write_key))
    assert response.status_code == 204, response.get_data(as_text=True)
    names = {f.number: f.name for f in query.read_access(keys.id, keys.read_key).fields}  # type: ignore[union-attr]
    assert names == {
        1: "temperature",
        2: "humidity",
        3: "garden temperature",
        4: "weather air\\ temp",  # "air temp" as a plain name would read as measurement air, key temp
        5: "weather,room=lab temperature",
    }
    query_answer = client.get(
        "/query",
        query_string={"db": "weather", "q": "SELECT temperature, humidity FROM weather", "epoch": "s"},
        headers=basic(keys.read_key),
    ).get_json()
    assert query_answer["results"][0]["series"][0]["values"] == [
        [1700000000, 21.5, 40.0],
        [1700000060, 19.0, None],
    ]


def test_fields_line_protocol_named_before_keep_their_values(client: FlaskClient, app: Flask) -> None:
    keys = make_channel(make_user("wanda").user, name="weather", fields=["weather temperature"])
    response = client.post(
        "/write?db=weather", data=b"weather temperature=3 1700000000000000000", headers=basic(keys.write_key)
    )
    assert response.status_code == 204
    from fieldstation import query

    assert [f.name for f in query.read_access(keys.id, keys.read_key).fields] == ["weather temperature"]  # type: ignore[union-attr]


def test_a_line_with_hundreds_of_tags_is_stored(client: FlaskClient, channel: ChannelKeys) -> None:
    """Series names reach InfluxDB's 64 KiB key (migration 0008); 255 characters refused this."""
    tags = "".join(f",tag{i}=value{i}" for i in range(500))
    response = client.post(
        "/write?db=sensors", data=f"m{tags} v=1 5".encode(), headers=basic(channel.write_key)
    )
    assert response.status_code == 204, response.json
    ((name, values),) = readback.values_by_field(channel.id).items()
    assert len(name) > 7000 and name.endswith(",tag99=value99 v") and values == [1.0]
