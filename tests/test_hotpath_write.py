"""InfluxDB's ``POST /write`` through the device hot path answers exactly as the Flask view (#3).

Timestamped writes are idempotent, so the two apps must not write to one
channel: each has its own owner with a channel of the same name (a key's
``db=<name>`` is its own channel), and each request is built for each app with
that app's keys and channel ids. Both apps must give the same status, headers
and body, and their channels must hold the same fields, entries and readings
(times too, for lines that carry one).
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from influxdb import InfluxDBClient

from fieldstation import manage
from fieldstation.extensions import db
from tests import readback
from tests.factories import ChannelKeys, make_channel, make_user
from tests.liveserver import dev_server
from tests.test_hotpath import _count_flask_calls, send

#: Explicit line timestamps fall in 2001-2009; anything later was stamped by the server.
_FIRST, _LAST = 978_307_200, 1_262_304_000
_SERVER_STAMPED = 1_420_070_400 * 10**6  # 2015, in the store's microseconds
_UNIT_S = {"": 10**-9, "n": 10**-9, "u": 10**-6, "ms": 10**-3, "s": 1, "m": 60, "h": 3600}


@dataclass
class Side:
    """One app's owner and channels: ``sensors`` (any device) and ``guarded`` (allow-list: esp-1)."""

    user: str
    sensors: ChannelKeys
    guarded: ChannelKeys

    @classmethod
    def create(cls, user: str) -> Side:
        owner = make_user(user).user
        side = cls(user, make_channel(owner, "sensors", fields=("note",)), make_channel(owner, "guarded"))
        manage.add_device(side.guarded.channel, "esp-1")
        return side

    def key(self, role: str) -> str:
        keys = {
            "write": self.sensors.write_key,
            "read": self.sensors.read_key,
            "guarded": self.guarded.write_key,
            "unknown": "NOSUCHKEY0000000",
        }
        return keys[role]

    def database(self, ref: str) -> str:
        """``id:sensors`` -> this side's channel id; names and anything else as they are."""
        if ref.startswith("id:"):
            return str(getattr(self, ref[3:]).id)
        return ref


class WritePair:
    """Two apps on one database, with the hot path (``fast``) and without (``flask``), each its own side."""

    def __init__(self, app: Flask, flask_only: Flask) -> None:
        self.fast = app.test_client()
        self.flask = flask_only.test_client()
        self.fast_side, self.flask_side = Side.create("alice"), Side.create("bob")
        db.session.commit()


@pytest.fixture
def pair(app: Flask, flask_only: Flask) -> WritePair:
    return WritePair(app, flask_only)


@dataclass(frozen=True)
class WriteRequest:
    """A ``/write`` request with its key and ``db`` by role, built for either side."""

    method: str
    path: str
    auth: str  # basic, basic-nouser, basic-garbled, token, token-user, p, none
    key: str  # a role of Side.key
    db: str | None
    params: tuple[tuple[str, str], ...]
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def build(self, side: Side) -> dict[str, Any]:
        key, headers = side.key(self.key), dict(self.headers)
        query: list[tuple[str, str]] = []
        if self.db is not None:
            query.append(("db", side.database(self.db)))
        if self.auth in ("basic", "basic-nouser"):
            user = side.user if self.auth == "basic" else ""
            headers["Authorization"] = "Basic " + base64.b64encode(f"{user}:{key}".encode()).decode()
        elif self.auth == "basic-garbled":
            headers["Authorization"] = "Basic !!" + key
        elif self.auth in ("token", "token-user"):
            headers["Authorization"] = (
                f"Token {side.user}:{key}" if self.auth == "token-user" else f"Token {key}"
            )
        elif self.auth == "p":
            query += [("u", side.user), ("p", key)]
        query += self.params
        return {
            "method": self.method,
            "path": self.path,
            "query_string": urlencode(query),
            "headers": headers,
            # As sent: the test client would encode an empty body with a form Content-Type itself.
            "input_stream": io.BytesIO(self.body),
            "content_length": len(self.body),
        }


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=16)
_series = st.sampled_from(["m", "climate", "climate,room=lab", "m,device=esp01", "climate,room=lab\\ 2"])
_field_value = st.one_of(
    st.floats(-1e9, 1e9).map(repr),
    st.integers(-(10**9), 10**9).map(lambda n: f"{n}i"),
    st.sampled_from(['"a b"', '"x=1,y"', "true", "F", "55"]),
)
_field_key = st.sampled_from(["v", "t", "h", "note", "ok"])
_BAD_LINES = [
    "m",
    "m v=",
    "m v=1 x",
    "=v v=1",
    "m v=1i2",
    'm s="open',
    "m v=nan",
    "m v=1 99999999999999999999",
]


@st.composite
def good_line(draw: st.DrawFn, precision: str) -> str:
    """A valid line; half of them carry a time in 2001-2009 in the request's precision."""
    fields = draw(st.dictionaries(_field_key, _field_value, min_size=1, max_size=3))
    line = draw(_series) + " " + ",".join(f"{k}={v}" for k, v in fields.items())
    if draw(st.booleans()):
        unit = _UNIT_S.get(precision, 1)
        line += f" {draw(st.integers(int(_FIRST / unit), int(_LAST / unit)))}"
    return line


@st.composite
def line_body(draw: st.DrawFn, precision: str, good: bool) -> bytes:
    """Lines, mostly good for a good request; anything (bad UTF-8 included) otherwise."""
    bad = st.one_of(st.sampled_from(_BAD_LINES + ["", "# comment"]), _text)
    line = good_line(precision)
    lines = draw(st.lists(st.one_of(line, line, line, bad) if good else st.one_of(line, bad), max_size=4))
    if good and not lines:
        lines = [draw(line)]
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n"]))
    body = text.encode()
    if not good and draw(st.integers(0, 9)) == 0:
        body += b"\xff"
    return body


_CONTENT_TYPES = [
    "text/plain; charset=utf-8",
    "application/x-www-form-urlencoded",
    "application/octet-stream",
    "application/json",
    "multipart/form-data; boundary=x",
]


@st.composite
def write_requests(draw: st.DrawFn) -> WriteRequest:
    """Most of them as firmware sends them (the layer takes those); the rest anything."""
    good = draw(st.integers(0, 9)) < 7
    if good:
        key, db_ref, mac = draw(
            st.sampled_from(
                [("write", "sensors", None), ("write", "id:sensors", None), ("write", "sensors", "ESP-3")]
                + [("guarded", "guarded", "esp-1"), ("guarded", "id:guarded", "ESP-1")]
            )
        )
        auth = draw(st.sampled_from(["basic", "basic-nouser", "token", "token-user", "p"]))
        precision = draw(st.sampled_from(["", "", "n", "u", "ms", "s", "m", "h"]))
        method, path = "POST", "/write"
    else:
        key = draw(st.sampled_from(["write", "read", "guarded", "unknown"]))
        db_ref = draw(
            st.sampled_from(["sensors", "guarded", "id:sensors", "id:guarded", "nosuch", "999999", ""])
        )
        db_ref = draw(st.one_of(st.just(db_ref), st.none(), _text))
        mac = draw(st.one_of(st.none(), st.sampled_from(["esp-1", "esp-2", "bad mac!", ""])))
        auth = draw(st.sampled_from(["basic", "basic-garbled", "token", "p", "none"]))
        precision = draw(st.sampled_from(["", "s", "ms", "x", "ns"]))
        method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]))
        path = draw(st.sampled_from(["/write", "/write", "/write", "/write/"]))
    params = [("precision", precision)] if precision or draw(st.booleans()) else []
    if mac is not None:
        params.append(("mac", mac))
    if draw(st.integers(0, 9)) == 0:
        params.append(("rp", "autogen"))
    headers: list[tuple[str, str]] = []
    if draw(st.booleans()):
        headers.append(("Content-Type", draw(st.sampled_from(_CONTENT_TYPES))))
    if not good and draw(st.integers(0, 4)) == 0:
        headers.append(draw(st.sampled_from([("Cookie", "session=x"), ("Content-Encoding", "identity")])))
    body = draw(line_body(precision, good))
    return WriteRequest(method, path, auth, key, db_ref, tuple(params), tuple(headers), body)


def stored(side: Side) -> list[Any]:
    """Both channels' fields, entries and readings; server-stamped times as None."""

    def when(ts: int) -> int | None:
        return None if ts >= _SERVER_STAMPED else ts

    db.session.rollback()
    out: list[Any] = []
    for channel in (side.sensors, side.guarded):
        c = {"c": channel.id}
        fields = db.session.execute(
            sa.text("SELECT number, name FROM fields WHERE channel_id = :c ORDER BY number"), c
        ).all()
        entries = db.session.execute(
            sa.text("SELECT entry_id, ts, status FROM entries WHERE channel_id = :c ORDER BY entry_id"), c
        ).all()
        readings = db.session.execute(
            sa.text(
                "SELECT f.number, r.ts, r.value, r.text FROM readings r JOIN fields f ON f.id = r.field_id "
                "WHERE f.channel_id = :c"
            ),
            c,
        ).all()
        out.append([tuple(f) for f in fields])
        out.append([(entry_id, when(ts), status) for entry_id, ts, status in entries])
        out.append(sorted(((n, when(ts), v, t) for n, ts, v, t in readings), key=repr))
    db.session.rollback()
    return out


def normalized(answer: tuple[int, list[tuple[str, str]], bytes], side: Side) -> tuple[Any, ...]:
    """The answer with this side's channel ids in ``database not found: "<id>"`` named by role."""
    status, headers, body = answer
    text, changed = body.decode(), False
    for role in ("sensors", "guarded"):
        channel_id = getattr(side, role).id
        for quoted, named in ((f'\\"{channel_id}\\"', f'\\"<{role}>\\"'), (f'"{channel_id}"', f'"<{role}>"')):
            if f"found: {quoted}" in text or any(f"found: {quoted}" in v for _, v in headers):
                changed = True
                text = text.replace(f"found: {quoted}", f"found: {named}")
                headers = [(k, v.replace(f"found: {quoted}", f"found: {named}")) for k, v in headers]
    if changed:  # the id's digits are not the name's
        headers = [(k, v) for k, v in headers if k != "Content-Length"]
    return status, headers, text


_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(request=write_requests())
@example(request=WriteRequest("POST", "/write", "basic", "write", "sensors", (), (), b"m v=1"))
@example(request=WriteRequest("POST", "/write", "p", "write", "sensors", (), (), b"m v=1 1000000000\nm v=\n"))
def test_write_answers_as_flask_does(pair: WritePair, request: WriteRequest) -> None:
    fast = send(pair.fast, request.build(pair.fast_side))
    flask = send(pair.flask, request.build(pair.flask_side))
    assert normalized(fast, pair.fast_side) == normalized(flask, pair.flask_side), request
    assert stored(pair.fast_side) == stored(pair.flask_side), request


def test_one_point_skips_flask_and_refusals_do_not(
    app: Flask, pair: WritePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_flask_calls(app, monkeypatch)
    side = pair.fast_side
    auth = {"Authorization": "Basic " + base64.b64encode(f"alice:{side.sensors.write_key}".encode()).decode()}
    written = pair.fast.post("/write?db=sensors", data=b"climate,room=lab t=21.5", headers=auth)
    assert (written.status_code, written.headers["X-Influxdb-Version"]) == (204, "1.8.10")
    partial = pair.fast.post("/write?db=sensors&precision=s", data=b"m v=2 1000000000\nm v=", headers=auth)
    assert partial.status_code == 400 and partial.json["error"].startswith("partial write: ")
    assert calls == []
    assert pair.fast.post("/write?db=nosuch", data=b"m v=3", headers=auth).status_code == 404
    wrong = {"Authorization": "Basic " + base64.b64encode(b"alice:NOSUCHKEY0000000").decode()}
    assert pair.fast.post("/write?db=sensors", data=b"m v=3", headers=wrong).status_code == 401
    assert pair.fast.post("/write?db=sensors", data=b"m v=", headers=auth).status_code == 400
    assert calls == ["/write"] * 3
    assert readback.values_by_field(side.sensors.id) == {"climate,room=lab t": [21.5], "m v": [2.0]}


def test_refused_write_reaches_flask_with_its_body(pair: WritePair) -> None:
    """Flask reads the body the layer read: the bad line is named in its answer."""
    side = pair.fast_side
    reply = pair.fast.post(f"/write?db=sensors&p={side.sensors.write_key}", data=b"m v=oops")
    assert reply.status_code == 400
    assert reply.json == {"error": "unable to parse 'm v=oops' (line 1): invalid boolean"}


def test_influxdb_client_through_the_layer(
    app: Flask, pair: WritePair, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_flask_calls(app, monkeypatch)
    key = pair.fast_side.sensors.write_key
    with dev_server(app) as url:  # in this process, so the calls are counted
        host, port = url.removeprefix("http://").split(":")
        client = InfluxDBClient(host=host, port=int(port), username="alice", password=key, database="sensors")
        point = {"measurement": "climate", "time": "2005-01-01T00:00:00Z", "fields": {"t": 21.5}}
        assert client.write_points([point])
    assert readback.readings(pair.fast_side.sensors.id) == [("climate t", 1_104_537_600_000_000, 21.5, None)]
    assert calls == []
