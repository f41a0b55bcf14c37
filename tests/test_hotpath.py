"""The device hot path (``http.hotpath``) answers exactly as the Flask views do (#3).

Each request goes to the app with the hot path and to the same app without it,
on the same database, each with its own user, channels and keys (alike on both
sides). Both must give the same status, headers and body, and store the same
entry. The hot path
must also actually take the common shapes, or it would be tested for nothing.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fieldstation import manage
from fieldstation.extensions import db
from fieldstation.http import hotpath
from tests.conftest import inside_metrics
from tests.factories import make_channel, make_user


class Side:
    """One app's own user and channels ("open", and "guarded" with an allow-list), alike on both sides."""

    def __init__(self, app: Flask, username: str) -> None:
        self.client = app.test_client()
        owner = make_user(username).user
        self.open = make_channel(owner, "open", fields=("t", "h", "p"))
        self.guarded = make_channel(owner, "guarded", fields=("t",))
        manage.add_device(self.guarded.channel, "esp-1")
        db.session.commit()
        self.keys = {
            OPEN_WRITE: self.open.write_key,
            OPEN_READ: self.open.read_key,
            GUARDED_WRITE: self.guarded.write_key,
        }

    def concrete(self, request: dict[str, Any]) -> dict[str, Any]:
        """``request`` with this side's keys in place of the placeholders."""

        def fill(text: str) -> str:
            for placeholder, key in self.keys.items():
                text = text.replace(placeholder, key)
            return text

        filled = dict(
            request,
            path=fill(request["path"]),
            headers={k: fill(v) for k, v in request.get("headers", {}).items()},
        )
        if "query_string" in request:
            filled["query_string"] = fill(request["query_string"])
        if "data" in request:
            filled["data"] = fill(request["data"].decode()).encode()
        return filled

    def entry_count(self) -> int:
        count = int(
            db.session.scalar(
                sa.text("SELECT count(*) FROM entries WHERE channel_id IN (:a, :b)"),
                {"a": self.open.id, "b": self.guarded.id},
            )
        )
        db.session.rollback()
        return count


#: Placeholders the generated requests carry for each side's real keys (key-shaped, never a real key).
OPEN_WRITE, OPEN_READ, GUARDED_WRITE = "PLACEOPENWRITE00", "PLACEOPENREAD000", "PLACEGUARDWRITE0"


class Pair:
    """One database, two apps: with the hot path (``fast``) and without (``flask``), each with its
    own user and channels, so that neither answer depends on what the other app wrote."""

    def __init__(self, app: Flask, flask_only: Flask) -> None:
        self.fast_side = Side(app, "alice")
        self.flask_side = Side(flask_only, "bob")
        self.fast, self.flask = self.fast_side.client, self.flask_side.client
        self.open, self.guarded = self.fast_side.open, self.fast_side.guarded
        self.keys = {
            "open-write": OPEN_WRITE,
            "open-read": OPEN_READ,
            "guarded-write": GUARDED_WRITE,
            "unknown": "NOSUCHKEY0000000",
            "empty": "",
        }


@pytest.fixture
def pair(app: Flask, flask_only: Flask) -> Pair:
    return Pair(app, flask_only)


def newest_entry(channel_ids: tuple[int, int]) -> tuple[Any, ...]:
    """The newest entry of these channels: (channel name, entry id, status, location, values by field)."""
    channel_id, entry_id, status, lat, lon, elev, ts = db.session.execute(
        sa.text(
            "SELECT e.channel_id, e.entry_id, e.status, e.latitude, e.longitude, e.elevation, e.ts "
            "FROM entries e WHERE e.channel_id IN (:a, :b) ORDER BY e.ts DESC, e.entry_id DESC LIMIT 1"
        ),
        {"a": channel_ids[0], "b": channel_ids[1]},
    ).one()
    name = db.session.scalar(sa.text("SELECT name FROM channels WHERE id = :c"), {"c": channel_id})
    values = db.session.execute(
        sa.text(
            "SELECT f.number, r.value, r.text FROM readings r JOIN fields f ON f.id = r.field_id "
            "WHERE f.channel_id = :c AND r.ts = :ts ORDER BY f.number"
        ),
        {"c": channel_id, "ts": ts},
    ).all()
    db.session.rollback()
    return (name, entry_id, status, lat, lon, elev, tuple(map(tuple, values)))


def entry_count() -> int:
    count = int(db.session.scalar(sa.text("SELECT count(*) FROM entries")))
    db.session.rollback()
    return count


def send(client: FlaskClient, request: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    reply = client.open(**request)
    return reply.status_code, sorted(reply.headers.items()), reply.get_data()


def assert_same_answer(pair: Pair, request: dict[str, Any]) -> None:
    """Send ``request`` through both apps, each with its own keys; answers and what they stored must agree."""
    answers = []
    for side in (pair.fast_side, pair.flask_side):
        before = side.entry_count()
        answers.append((send(side.client, side.concrete(request)), side.entry_count() - before))
    (fast, stored_fast), (flask, stored_flask) = answers
    assert stored_fast == stored_flask, (request, fast, flask)
    if not stored_fast:
        assert fast == flask, request
        return
    status, headers, body = fast
    if body.isdigit():  # the entry id, as text: the same on both sides
        assert fast == flask, request
        assert dict(headers) == {
            "Content-Type": "text/plain; charset=utf-8",
            "Content-Length": str(len(body)),
            "X-Content-Type-Options": "nosniff",
        }
    elif request["path"] == "/update.xml":  # Flask's in both
        assert (status, dict(headers)["Content-Type"]) == (flask[0], dict(flask[1])["Content-Type"])
    else:  # /update.json: the same entry but for its channel and time
        fast_entry, flask_entry = json.loads(body), json.loads(flask[2])
        for name in ("created_at", "channel_id"):
            fast_entry.pop(name, None)
            flask_entry.pop(name, None)
        assert (status, fast_entry) == (flask[0], flask_entry)
        assert dict(headers)["Content-Type"] == dict(flask[1])["Content-Type"] == "application/json"
        assert body.endswith(b"\n") == flask[2].endswith(b"\n")
    sides = [(side.open.id, side.guarded.id) for side in (pair.fast_side, pair.flask_side)]
    assert newest_entry(sides[0]) == newest_entry(sides[1])


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_number = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr), st.integers().map(str))
_value = st.one_of(_number, _text, st.sampled_from(["21.5", "-3", "1e3", "NaN", " 7 ", ""]))
_device = st.one_of(st.sampled_from(["esp-1", "ESP-1", "esp-2", "6c:rf:7f:2b:0e:g8"]), _text)
_PARAM_NAMES = ["field1", "field2", "field3", "field4", "field9", "status", "lat", "long", "elevation"]
_PARAM_NAMES += ["created_at", "timezone", "headers", "other"]


_good_value = st.one_of(
    st.floats(-1e6, 1e6).map(str), st.integers(-(10**6), 10**6).map(str), st.sampled_from(["on", "21,5"])
)
_good_params = st.fixed_dictionaries(
    {},
    optional={
        "field1": _good_value,
        "field2": _good_value,
        "field3": _good_value,
        "status": st.text(st.characters(codec="ascii", min_codepoint=32), max_size=20),
        "lat": st.floats(-90, 90).map(str),
        "long": st.floats(-180, 180).map(str),
        "elevation": st.floats(-400, 9000).map(str),
        "mac": st.sampled_from(["esp-1", "ESP-1", "esp-2"]),
    },
)


@st.composite
def update_requests(draw: st.DrawFn, keys: list[str]) -> dict[str, Any]:
    """A ``/update`` request as devices send it: half of them well formed, half anything."""
    good = draw(st.booleans())
    values: dict[str, str] = {}
    key = draw(st.sampled_from(keys[:1] * 3 + keys[2:3] if good else keys))
    places = ["api_key", "key", "apikey", "write_api_key", "header"] + ([] if good else ["none"])
    where_key = draw(st.sampled_from(places))
    if where_key not in ("header", "none"):
        values[where_key] = key
    if good:
        values.update(draw(_good_params))
    else:
        for name in draw(st.lists(st.sampled_from(_PARAM_NAMES), max_size=5, unique=True)):
            values[name] = draw(_value)
        if draw(st.booleans()):
            values["mac"] = draw(_device)
    headers: dict[str, str] = {}
    if where_key == "header":
        headers[draw(st.sampled_from(["X-THINGSPEAKAPIKEY", "THINGSPEAKAPIKEY"]))] = key
    if not good and draw(st.integers(0, 4)) == 0:
        headers["Cookie"] = "session=x"
    method = draw(st.sampled_from(["GET", "POST"] if good else ["GET", "POST", "HEAD", "PUT"]))
    paths = ["/update", "/update.json"] + ([] if good else ["/update.xml", "/update/"])
    path = draw(st.sampled_from(paths))
    request: dict[str, Any] = {"method": method, "path": path, "headers": headers}
    if method == "POST" and draw(st.booleans()):
        content_type = draw(
            st.sampled_from(
                ["application/x-www-form-urlencoded", "text/plain", "", "application/json", "text/PLAIN; x=y"]
            )
        )
        if content_type:
            headers["Content-Type"] = content_type
        split = draw(st.integers(0, len(values)))
        items = list(values.items())
        request["query_string"] = urlencode(items[:split])
        request["data"] = urlencode(items[split:]).encode()
    else:
        request["query_string"] = urlencode(values)
    return request


@st.composite
def seed_requests(draw: st.DrawFn, keys: list[str]) -> dict[str, Any]:
    """A seed path URL, well or badly formed."""
    if draw(st.booleans()):  # well formed
        key = draw(st.sampled_from(keys[:1] + keys[2:3]))
        device = draw(st.sampled_from(["esp-1", "ESP-1", "esp-2", "6c:rf:7f:2b:0e:g8"]))
        field, data, method = draw(st.sampled_from(["1", "2", "3"])), draw(_good_value), "GET"
    else:
        key = draw(st.one_of(st.sampled_from(keys), _text))
        device = draw(_device)
        field = draw(st.one_of(st.sampled_from(["1", "2", "4", "0", "x"]), _text))
        data, method = draw(_value), draw(st.sampled_from(["GET", "GET", "POST"]))
    parts = [f"API_key={key}", f"mac={device}", f"field={field}", f"data={data}"]
    if draw(st.integers(0, 9)) == 0:
        parts = draw(st.permutations(parts))
    path = "/update/" + "/".join(parts)
    return {"method": method, "path": quote(path, safe="/=:"), "headers": {}}


_SETTINGS = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_SETTINGS
@given(data=st.data())
@example(data=None)
def test_update_answers_as_flask_does(pair: Pair, data: st.DataObject | None) -> None:
    keys = list(pair.keys.values())
    if data is None:  # the common device request, for certain
        request = {"method": "GET", "path": "/update", "query_string": f"api_key={keys[0]}&field1=21.5"}
    else:
        request = data.draw(update_requests(keys))
    assert_same_answer(pair, request)


@_SETTINGS
@given(data=st.data())
def test_seed_path_answers_as_flask_does(pair: Pair, data: st.DataObject) -> None:
    assert_same_answer(pair, data.draw(seed_requests(list(pair.keys.values()))))


def _count_flask_calls(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    layer = inside_metrics(app)
    assert isinstance(layer, hotpath.DeviceWrites)
    inner = layer.wsgi_app

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        calls.append(environ["PATH_INFO"])
        return inner(environ, start_response)

    monkeypatch.setattr(layer, "wsgi_app", counting)
    return calls


def test_device_requests_skip_flask_and_refusals_do_not(
    app: Flask, pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _count_flask_calls(app, monkeypatch)
    key = pair.open.write_key
    assert pair.fast.get(f"/update?api_key={key}&field1=21.5").get_data() == b"1"
    form = {"field1": "1", "field2": "2"}
    reply = pair.fast.post("/update", data=form, headers={"X-THINGSPEAKAPIKEY": key})
    assert reply.get_data() == b"2"
    assert (
        pair.fast.get(f"/update/API_key={pair.guarded.write_key}/mac=ESP-1/field=1/data=3").get_data() == b"1"
    )
    written = pair.fast.post(f"/update.json?field1=4&api_key={key}")  # the Python package's request
    assert (written.get_json()["entry_id"], written.get_json()["field1"]) == (3, "4")
    assert calls == []
    assert pair.fast.get(f"/update?api_key={pair.open.read_key}&field1=1").status_code == 401
    assert pair.fast.get(f"/update?api_key={key}&field7=1").get_data() == b"0"
    assert calls == ["/update", "/update"]


def test_rate_limited_device_gets_flasks_refusal(
    app: Flask, pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    pair.open.channel.min_interval_s = 60
    db.session.commit()
    calls = _count_flask_calls(app, monkeypatch)
    path = f"/update?api_key={pair.open.write_key}&field1=1"
    assert pair.fast.get(path).get_data() == b"1"
    refused = pair.fast.get(path)
    assert (refused.status_code, refused.get_data()) == (200, b"0")
    assert "X-Fieldstation-Error" in refused.headers
    assert calls == ["/update"]
    assert entry_count() == 1


def test_unexpected_failure_is_flasks_500_and_not_retried(
    app: Flask, pair: Pair, monkeypatch: pytest.MonkeyPatch
) -> None:
    app.config["PROPAGATE_EXCEPTIONS"] = False
    attempts: list[object] = []

    def broken(*args: object) -> None:
        attempts.append(args)
        raise RuntimeError("the database went away")

    monkeypatch.setattr(hotpath, "write_entry", broken)
    reply = pair.fast.get(f"/update?api_key={pair.open.write_key}&field1=1")
    assert reply.status_code == 500
    assert reply.get_json() == {"error": {"code": "internal_error", "message": "internal server error"}}
    assert len(attempts) == 1


def test_form_body_is_still_there_for_flask(pair: Pair) -> None:
    """A refused POST reaches the Flask view with its body: the key in it is seen (401, not 'required')."""
    reply = pair.fast.post("/update", data={"api_key": "WRONGKEY", "field1": "1"})
    assert reply.status_code == 401
    assert reply.headers["X-Fieldstation-Error"] == "invalid write API key"


@pytest.mark.parametrize("length", ["²", "-1", "1e3", " 5"])
def test_odd_content_length_is_left_to_flask(pair: Pair, length: str) -> None:
    layer = inside_metrics(pair.fast.application)
    assert isinstance(layer, hotpath.DeviceWrites)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": "/update", "QUERY_STRING": "api_key=K&field1=1"}
    environ |= {"CONTENT_LENGTH": length, "CONTENT_TYPE": "application/x-www-form-urlencoded"}
    assert layer.reading(environ) is None  # not read, not parsed: Flask answers it
