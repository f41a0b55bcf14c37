"""GET|POST /query: the real `influxdb` client against a real server, Grafana's queries, access, errors."""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from influxdb import InfluxDBClient
from influxdb.exceptions import InfluxDBClientError

from fieldstation import auth, manage, store
from fieldstation.models import ApiKey, KeyKind
from fieldstation.points import Batch, Entry
from fieldstation.timeunits import MINUTE, SECOND, now_us
from tests.conftest import unavailable
from tests.factories import ChannelKeys, make_channel, make_user
from tests.liveserver import serve
from tests.servers import InfluxDB, query, start_influxdb

T0 = 1_577_836_800 * SECOND  # 2020-01-01T00:00:00Z
LAB = "climate,device=esp01,room=lab temperature"
HALL = "climate,device=esp02,room=hall temperature"
HUM = "climate,device=esp01,room=lab humidity"


pytestmark = pytest.mark.channel(name="sensors", fields=(LAB, HALL, HUM, "battery"))


@pytest.fixture
def channel(channel: ChannelKeys) -> ChannelKeys:
    """The shared channel "sensors" with ten minutes of readings."""
    keys = channel
    store.write(
        Batch(
            keys.id,
            [Entry({1: 20.0 + i, 2: 10.0 + i, 3: 50.0, 4: 3.7}, ts=T0 + i * MINUTE) for i in range(10)],
        )
    )
    return keys


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    with serve(app) as url:
        yield url


def client_for(server: str, key: str | None, database: str = "sensors") -> InfluxDBClient:
    port = int(server.rsplit(":", 1)[1])
    return InfluxDBClient("127.0.0.1", port, "alice", key, database=database)


def test_influxdb_client_query_gets_what_was_written(channel: ChannelKeys, server: str) -> None:
    client = client_for(server, channel.read_key)
    result = client.query(
        'SELECT "temperature" FROM "climate" WHERE "room" = \'lab\' AND time >= \'2020-01-01T00:00:00Z\''
        " AND time < '2020-01-01T00:03:00Z'"
    )
    assert list(result.get_points()) == [
        {"time": "2020-01-01T00:00:00Z", "temperature": 20.0},
        {"time": "2020-01-01T00:01:00Z", "temperature": 21.0},
        {"time": "2020-01-01T00:02:00Z", "temperature": 22.0},
    ]
    grouped = client.query(
        'SELECT mean("temperature") FROM "climate" WHERE time >= 1577836800s AND time < 1577837400s'
        ' GROUP BY time(5m), "room" fill(none)',
        epoch="s",
    )
    assert list(grouped.get_points(tags={"room": "lab"})) == [
        {"time": 1577836800, "mean": 22.0},
        {"time": 1577837100, "mean": 27.0},
    ]
    assert list(grouped.get_points(tags={"room": "hall"}))[0]["mean"] == 12.0
    assert [m["name"] for m in client.get_list_measurements()] == ["climate", "sensors"]
    assert client.get_list_database() == [{"name": "sensors"}]
    both = client.query('SELECT last("battery") FROM "sensors"; SELECT count(humidity) FROM climate')
    # A selector alone answers with its point's time, as InfluxDB does (a single-stat panel's age).
    assert list(both[0].get_points()) == [{"time": "2020-01-01T00:09:00Z", "last": 3.7}]
    assert list(both[1].get_points())[0]["count"] == 10
    client.create_database("sensors")  # the channel exists: success


def test_round_trip_through_store_with_client_naming(channel: ChannelKeys, server: str) -> None:
    client = client_for(server, channel.write_key)
    rows = client.query(
        'SELECT max("temperature"), min("temperature"), sum("temperature") FROM "climate"'
        " WHERE time > now() - 3650d GROUP BY *",
    )
    lab = list(rows.get_points(tags={"device": "esp01", "room": "lab"}))
    assert lab == [{"time": lab[0]["time"], "max": 29.0, "min": 20.0, "sum": 245.0}]


def test_fill_options(client: FlaskClient, channel: ChannelKeys) -> None:
    def values(fill: str) -> list[list[object]]:
        q = (
            "SELECT mean(temperature) FROM climate WHERE room = 'lab' AND time >= 1577836200s"
            f" AND time < 1577837400s GROUP BY time(5m) fill({fill})"
        )
        body = client.get(
            "/query", query_string={"q": q, "db": "sensors", "p": channel.read_key, "epoch": "m"}
        )
        return body.get_json()["results"][0]["series"][0]["values"]  # type: ignore[no-any-return]

    assert values("null") == [[26297270, None], [26297275, None], [26297280, 22.0], [26297285, 27.0]]
    assert values("none") == [[26297280, 22.0], [26297285, 27.0]]
    assert values("-1") == [[26297270, -1.0], [26297275, -1.0], [26297280, 22.0], [26297285, 27.0]]
    desc = client.get(
        "/query",
        query_string={
            "q": "SELECT temperature FROM climate WHERE room='hall' ORDER BY time DESC LIMIT 2",
            "db": "sensors",
            "p": channel.read_key,
        },
    ).get_json()
    assert [v[1] for v in desc["results"][0]["series"][0]["values"]] == [19.0, 18.0]


@pytest.mark.parametrize(
    ("epoch", "first"),
    [
        (None, "2020-01-01T00:00:00Z"),
        ("ns", T0 * 1000),
        ("u", T0),
        ("ms", T0 // 1000),
        ("s", T0 // SECOND),
        ("m", T0 // MINUTE),
    ],
)
def test_one_series_in_every_epoch_keeps_text_values(
    client: FlaskClient, channel: ChannelKeys, epoch: str | None, first: object
) -> None:
    """A Grafana panel's raw query (one series): times in the unit asked for, text readings as text."""
    store.write(Batch(channel.id, [Entry({4: "low"}, ts=T0 + 10 * MINUTE)]))
    q = "SELECT battery FROM sensors WHERE time >= 1577836800s"
    args = {"q": q, "db": "sensors", "p": channel.read_key}
    if epoch:
        args["epoch"] = epoch
    rows = client.get("/query", query_string=args).get_json()["results"][0]["series"][0]["values"]
    assert len(rows) == 11 and rows[0] == [first, 3.7] and rows[-1][1] == "low"
    step = {None: None, "ns": MINUTE * 1000, "u": MINUTE, "ms": MINUTE // 1000, "s": 60, "m": 1}[epoch]
    if step is not None:
        assert rows[-1][0] - rows[0][0] == 10 * step


def test_show_statements_for_grafana(client: FlaskClient, channel: ChannelKeys) -> None:
    q = (
        'SHOW FIELD KEYS FROM "climate"; SHOW TAG KEYS FROM "climate";'
        ' SHOW TAG VALUES FROM "climate" WITH KEY = "room"; SHOW RETENTION POLICIES'
    )
    response = client.post(
        "/query", data={"q": q, "db": "sensors"}, headers={"Authorization": f"Token {channel.read_key}"}
    )
    results = response.get_json()["results"]
    assert results[0]["series"][0]["values"] == [["humidity", "float"], ["temperature", "float"]]
    assert results[1]["series"][0]["values"] == [["device"], ["room"]]
    assert results[2]["series"][0]["values"] == [["room", "hall"], ["room", "lab"]]
    assert results[3]["series"][0]["values"][0][0] == "autogen"


def test_access_and_errors(client: FlaskClient, channel: ChannelKeys) -> None:
    def run(q: str, key: str | None, db: str = "sensors") -> tuple[int, dict]:  # type: ignore[type-arg]
        args = {"q": q, "db": db} | ({"p": key} if key else {})
        response = client.get("/query", query_string=args)
        assert response.headers["X-Influxdb-Version"]
        return response.status_code, json.loads(response.data)

    other = make_channel(channel.channel.owner, "other")
    q = "SELECT temperature FROM climate"
    assert run(q, None) == (200, {"results": [{"statement_id": 0, "error": "database not found: sensors"}]})
    assert run(q, other.read_key)[1]["results"][0]["error"] == "database not found: sensors"
    assert run(q, "WRONGKEY00000000") == (401, {"error": "authorization failed"})
    status, body = run("SELEKT 1", channel.read_key)
    assert status == 400 and body["error"].startswith("error parsing query")
    assert run(q, channel.read_key, db=str(channel.id))[1]["results"][0]["series"]
    user_key = manage.create_key(channel.channel.owner, KeyKind.USER)[1]
    assert run("SHOW DATABASES", user_key)[1]["results"][0]["series"][0]["values"] == [["sensors"], ["other"]]
    too_many = run(
        "SELECT mean(temperature) FROM climate WHERE time > now() - 3650d GROUP BY time(1s)", channel.read_key
    )
    assert too_many[0] == 200 and "buckets" in too_many[1]["results"][0]["error"]
    assert (
        run("CREATE DATABASE nope", channel.read_key)[1]["results"][0]["error"] == "database not found: nope"
    )


def test_client_raises_on_influx_errors(channel: ChannelKeys, server: str) -> None:
    with pytest.raises(InfluxDBClientError) as caught:
        client_for(server, "WRONGKEY00000000").query("SHOW DATABASES")
    assert caught.value.code == 401


def test_database_names_resolve_among_readable_channels(client: FlaskClient, channel: ChannelKeys) -> None:
    """A database is a channel id first, then a name; the key's own channels before public ones."""

    def answer(db: str, key: str | None, measurement: str = "sensors") -> object:
        args = {"q": f"SELECT battery FROM {measurement}", "db": db} | ({"p": key} if key else {})
        result = client.get("/query", query_string=args).get_json()["results"][0]
        return result.get("error") or result["series"][0]["values"][0][1]

    bob = make_user("bob").user
    theirs = make_channel(bob, "sensors", fields=("battery",), public=True)
    store.write(Batch(theirs.id, [Entry({1: 9.9}, ts=T0)]))
    hidden = make_channel(bob, "hidden", fields=("battery",))
    store.write(Batch(hidden.id, [Entry({1: 1.5}, ts=T0)]))
    assert answer("sensors", channel.read_key) == 3.7  # own channel, not bob's public one
    assert answer("sensors", None) == 9.9  # no key: the public one
    assert answer(str(theirs.id), channel.read_key) == 9.9  # an id names that channel
    assert answer(f"0{theirs.id}", channel.read_key) == f"database not found: 0{theirs.id}"
    assert answer(str(hidden.id), channel.read_key) == f"database not found: {hidden.id}"
    assert answer("hidden", hidden.read_key, "hidden") == 1.5
    assert answer("hidden", channel.read_key, "hidden") == "database not found: hidden"
    user_key = manage.create_key(bob, KeyKind.USER)[1]
    assert answer("sensors", user_key) == 9.9  # bob's own
    assert answer(str(channel.id), user_key) == f"database not found: {channel.id}"
    manage.revoke_key(auth.find_key(user_key) or ApiKey())
    args = {"q": "SELECT battery FROM sensors", "db": "sensors", "p": user_key}
    assert client.get("/query", query_string=args).status_code == 401  # revoked: refused at once


def test_series_that_differ_by_tags_keep_their_own_rows(client: FlaskClient, channel: ChannelKeys) -> None:
    """Without GROUP BY, points of two tag sets at one time are two rows, as InfluxDB answers.

    Before, the later series' point overwrote the earlier one's in a row per time.
    """
    window = f"time >= {T0 * 1000} AND time < {(T0 + 2 * MINUTE) * 1000}"
    q = f"SELECT temperature, humidity FROM climate WHERE {window}"
    answer = client.get(
        "/query", query_string={"db": "sensors", "q": q, "epoch": "s", "p": channel.read_key}
    ).get_json()
    t = T0 // SECOND
    assert answer["results"][0]["series"][0]["values"] == [
        [t, 20.0, 50.0],  # device esp01 (lab): its two fields share a row
        [t, 10.0, None],  # device esp02 (hall)
        [t + 60, 21.0, 50.0],
        [t + 60, 11.0, None],
    ]


@pytest.fixture(scope="module")
def influxd() -> Iterator[InfluxDB]:
    """A real InfluxDB 1.x with database ``sensors``, for answers to compare with."""
    try:
        server = start_influxdb("sensors")
    except RuntimeError as exc:
        unavailable(str(exc))
        raise
    try:
        yield server
    finally:
        server.stop()


def test_a_lone_selector_answers_with_its_points_time_as_influxdb_does(
    client: FlaskClient, channel: ChannelKeys, influxd: InfluxDB
) -> None:
    """Grafana's single-stat panel shows the age of ``last()``'s time; both servers give the point's."""
    body = "\n".join(
        f"climate,device=esp01,room=lab temperature={20 + i} {T0 // SECOND + 60 * i}" for i in range(10)
    )
    urllib.request.urlopen(
        urllib.request.Request(f"{influxd.url}/write?db=sensors&precision=s", data=body.encode()), timeout=30
    ).read()
    for q in (
        "SELECT last(temperature) FROM climate WHERE room = 'lab'",
        "SELECT first(temperature) FROM climate WHERE room = 'lab'",
        "SELECT last(temperature), first(temperature) FROM climate WHERE room = 'lab'",
        "SELECT last(temperature) FROM climate WHERE room = 'lab' AND time >= '2020-01-01T00:02:00Z'",
    ):
        theirs = query(influxd, q, db="sensors")
        ours = client.get("/query", query_string={"q": q, "db": "sensors", "p": channel.read_key}).get_json()
        assert ours == theirs, q


_FIELDS = st.sampled_from(["temperature", "humidity", "nope", '"temperature"'])
_NUMBERS = st.sampled_from(["0", "2", "-1.5", "1e308", "0.001", "100", "250", "-300"])
_AGGREGATES = st.sampled_from(["mean", "median", "mode", "spread", "stddev", "count", "first", "last", "min",
                               "max", "sum", "integral", "distinct"])  # fmt: skip
_TRANSFORMS = st.sampled_from(["derivative", "non_negative_derivative", "difference",
                               "non_negative_difference", "cumulative_sum", "moving_average"])  # fmt: skip
_UNITS = st.sampled_from(["", ", 1s", ", 1ns", ", 7m", ", 1h", ", 1000d"])


@st.composite
def _call(draw: st.DrawFn, grouped: bool) -> str:
    field = draw(_FIELDS)
    kind = draw(st.sampled_from(["agg", "agg", "percentile", "top", "transform", "count_distinct"]))
    if kind == "percentile":
        return f"percentile({field}, {draw(_NUMBERS)})"
    if kind == "top":
        return f"{draw(st.sampled_from(['top', 'bottom']))}({field}, {draw(_NUMBERS)})"
    if kind == "count_distinct":
        return f"count(distinct({field}))"
    if kind == "transform":
        name = draw(_TRANSFORMS)
        inner = f"{draw(_AGGREGATES)}({field})" if grouped else field
        extra = f", {draw(_NUMBERS)}" if name == "moving_average" else draw(_UNITS)
        return f"{name}({inner}{extra})"
    return f"{draw(_AGGREGATES)}({field}{draw(_UNITS) if draw(st.booleans()) else ''})"


@st.composite
def _statement(draw: st.DrawFn) -> str:
    grouped = draw(st.booleans())
    columns = []
    for _ in range(draw(st.integers(1, 3))):
        column = draw(_call(grouped))
        if draw(st.booleans()):
            column = f"{draw(_NUMBERS)} {draw(st.sampled_from(['+', '-', '*', '/']))} -{column}"
        columns.append(column)
    window = "time >= 1577836200s AND time < 1577837700s"
    group = f" GROUP BY time({draw(st.sampled_from(['1s', '1m', '7m', '1h']))})" if grouped else ""
    fill = f" fill({draw(st.sampled_from(['null', 'none', 'previous', 'linear', '0', '-2.5']))})"
    tail = draw(st.sampled_from(["", " ORDER BY time DESC", " LIMIT 3", ", room"]))
    if tail == ", room":
        group = (group or " GROUP BY") + (" room" if not group else ", room")
        tail = ""
    return f"SELECT {', '.join(columns)} FROM climate WHERE {window}{group}{fill if grouped else ''}{tail}"


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(q=_statement())
def test_generated_function_queries_never_fail_the_request(
    client: FlaskClient, channel: ChannelKeys, q: str
) -> None:
    """Any mix of the functions, arithmetic, fills and orders: an answer or InfluxDB's error, never a 500."""
    response = client.get("/query", query_string={"q": q, "db": "sensors", "p": channel.read_key})
    assert response.status_code in (200, 400), (q, response.data[:500])
    body = response.get_json()
    assert "results" in body or body["error"].startswith("error parsing query"), q


def test_client_patterns_cannot_hold_a_worker(client: FlaskClient, channel: ChannelKeys) -> None:
    """Patterns that backtrack for ages in Python's re, over long tag values: answered at once (RE2's
    linear time); one whose DFA explodes is a statement error, not a held worker or a 500."""
    rng = random.Random(7)
    mixed = "".join(rng.choice("ab") for _ in range(20_000))
    body = f"long,v={'a' * 20_000} x=1 {T0 * 1000}\nlong,v={mixed} x=2 {T0 * 1000}"
    written = client.post(
        "/write?db=sensors", data=body, headers={"Authorization": f"Token {channel.write_key}"}
    )
    assert written.status_code == 204

    def answer(pattern: str) -> dict[str, Any]:
        q = f"SELECT x FROM long WHERE v =~ /{pattern}/"
        response = client.get("/query", query_string={"q": q, "db": "sensors", "p": channel.read_key})
        assert response.status_code == 200
        return response.get_json()["results"][0]  # type: ignore[no-any-return]

    assert "series" not in answer("(a|a)*b$")
    assert [row[1] for row in answer("^(a|aa)*$")["series"][0]["values"]] == [1.0]
    assert [row[1] for row in answer("(a+)+b")["series"][0]["values"]] == [2.0]
    assert "too costly" in answer("(a|b)*a(a|b){200}c")["error"]


def test_group_by_time_with_a_now_offset_starts_buckets_at_now_s_phase(
    client: FlaskClient, channel: ChannelKeys
) -> None:
    """``time(1m, now())``: every bucket starts where now() falls within its minute (the differential
    tests cannot ask it: the two servers' now() differ)."""
    before = now_us()
    q = f"SELECT count(temperature) FROM climate WHERE time >= {T0}u AND time < {T0 + 10 * MINUTE}u"
    response = client.get(
        "/query",
        query_string={"q": q + " GROUP BY time(1m, now()) fill(none)", "db": "sensors", "epoch": "u"},
        headers={"Authorization": f"Token {channel.read_key}"},
    )
    after = now_us()
    rows = response.get_json()["results"][0]["series"][0]["values"]
    phases = {ts % MINUTE for ts, _ in rows}
    assert len(phases) == 1 and len(rows) == 10 and sum(n for _, n in rows) == 20
    (phase,) = phases
    assert (
        before % MINUTE <= phase <= after % MINUTE
        or after - before >= MINUTE
        or after % MINUTE < before % MINUTE
    )
