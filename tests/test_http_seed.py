"""The seed's path URL: /update/API_key=<key>/mac=<device>/field=<n>/data=<value>."""

from __future__ import annotations

import itertools
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldstation import manage
from fieldstation.errors import BadRequest
from fieldstation.http.seed import parse_seed_path
from tests import readback
from tests.factories import ChannelKeys, make_channel, make_user

_names = itertools.count()


def seed_url(key: str, mac: str, field: object, data: str) -> str:
    return f"/update/API_key={key}/mac={mac}/field={field}/data={data}"


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_seed_example_is_stored_with_server_time(
    client: FlaskClient, channel: ChannelKeys, method: str
) -> None:
    response = client.open(seed_url(channel.write_key, "6c:rf:7f:2b:0e:g8", 2, "21.5"), method=method)
    assert response.status_code == 200 and response.text == "1"
    assert response.headers["Content-Length"] == "1"
    ((name, ts, value, _),) = readback.readings(channel.id)
    assert (name, value) == ("humidity", 21.5) and ts > 1_700_000_000_000_000


def test_allow_list_is_case_insensitive_and_refuses_others(client: FlaskClient, channel: ChannelKeys) -> None:
    manage.add_device(channel.channel, "6C:RF:7F:2B:0E:G8")
    ok = client.get(seed_url(channel.write_key, "6c:rf:7f:2b:0e:g8", 1, "1"))
    upper = client.get(seed_url(channel.write_key, "6C:RF:7F:2B:0E:G8", 1, "2"))
    other = client.get(seed_url(channel.write_key, "aa:bb:cc:dd:ee:ff", 1, "3"))
    assert (ok.status_code, upper.status_code, other.status_code) == (200, 200, 403)
    assert readback.values_by_field(channel.id) == {"temperature": [1.0, 2.0]}


def test_key_bound_to_a_device(client: FlaskClient, channel: ChannelKeys) -> None:
    owner = channel.channel.owner
    from fieldstation.models import KeyKind

    _, key = manage.create_key(owner, KeyKind.WRITE, channel=channel.channel, device="aa-bb")
    assert client.get(seed_url(key, "AA-BB", 1, "1")).status_code == 200
    assert client.get(seed_url(key, "cc-dd", 1, "1")).status_code == 403


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/update/API_key=NOPE/mac=aa/field=1/data=1", 401),
        ("/update/API_key=/mac=aa/field=1/data=1", 400),
        ("/update/API_key={key}/mac=a b/field=1/data=1", 400),
        ("/update/API_key={key}/mac=aa/field=x/data=1", 400),
        ("/update/API_key={key}/mac=aa/field=0/data=1", 400),
        ("/update/API_key={key}/mac=aa/field=9/data=1", 400),
        ("/update/API_key={key}/mac=aa/field=1/data=nan", 400),
        ("/update/API_key={key}/mac=aa/field=1/data=", 400),
        ("/update/API_key={key}/field=1/data=1", 400),
        ("/update/something", 400),
    ],
)
def test_bad_seed_urls(client: FlaskClient, channel: ChannelKeys, path: str, status: int) -> None:
    response = client.get(path.replace("{key}", channel.write_key))
    assert response.status_code == status and response.text.strip()
    assert readback.readings(channel.id) == []


def test_rate_limit_is_429(client: FlaskClient, channel: ChannelKeys) -> None:
    manage.update_channel(channel.channel, min_interval_s=60)
    assert client.get(seed_url(channel.write_key, "aa", 1, "1")).status_code == 200
    assert client.get(seed_url(channel.write_key, "aa", 1, "2")).status_code == 429


_device = st.text(st.sampled_from("abcdefABCDEF0123456789:-._gxz"), min_size=1, max_size=64)


@given(
    key=st.text(max_size=20),
    device=st.text(max_size=70),
    field=st.text(max_size=5),
    data=st.text(max_size=60),
)
def test_parser_accepts_or_refuses_cleanly(key: str, device: str, field: str, data: str) -> None:
    rest = f"API_key={key}/mac={device}/field={field}/data={data}"
    try:
        reading = parse_seed_path(rest)
    except BadRequest:
        return
    assert reading.device == device.lower() and reading.field == int(field)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(device=_device, field=st.integers(-1, 4), data=st.text(min_size=1, max_size=40))
def test_stores_exactly_what_was_sent_or_nothing(app: Flask, device: str, field: int, data: str) -> None:
    ch = make_channel(make_user(f"u{next(_names)}").user, fields=["a", "b", "c"])
    response = app.test_client().get(seed_url(ch.write_key, device, field, quote(data, safe="")))
    stored = readback.readings(ch.id)
    if response.status_code != 200:
        assert 400 <= response.status_code < 500 and stored == []
        return
    ((name, _, value, text),) = stored
    assert name == "abc"[field - 1]
    if text is not None:
        assert text == data.strip()
    else:
        assert value == float(data)
