"""gzip bodies: any stream of members, large or small, truncated or padded, inflates or is refused
in bounded time; two members of which the first inflates past 64 KiB once made the server spin."""

from __future__ import annotations

import gzip
import http.client
import threading
import time
import zlib
from urllib.parse import urlsplit

import pytest
from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldstation.errors import BadRequest
from fieldstation.http.bodies import TooLarge, gunzip
from tests import readback
from tests.factories import ChannelKeys, make_channel, make_user
from tests.liveserver import SERVERS
from tests.test_http_ingest_garbage import ENDPOINTS

#: The 155-byte body that looped forever: a member of 100,000 bytes, then a second member.
TWO_MEMBERS = gzip.compress(b"field1=1&" * 11_112) + gzip.compress(b"field1=2")


def _inflate_in_time(data: bytes, limit: int) -> bytes | Exception:
    """gunzip in a thread, failing the test if it takes more than 5 s (a loop, not slowness)."""
    result: list[bytes | Exception] = []

    def run() -> None:
        try:
            result.append(gunzip(data, limit))
        except (TooLarge, BadRequest) as exc:
            result.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(5)
    assert not worker.is_alive(), f"gunzip of {len(data)} bytes did not finish in 5 s"
    return result[0]


def _reference(data: bytes) -> bytes | None:
    """What Python's own gzip module makes of the stream (None: it refuses it)."""
    try:
        return gzip.decompress(data)
    except (OSError, EOFError, zlib.error):
        return None


_payload = st.one_of(
    st.binary(max_size=300),
    st.tuples(st.binary(min_size=1, max_size=8), st.integers(1, 40_000)).map(lambda p: p[0] * p[1]),
)


@st.composite
def gzip_streams(draw: st.DrawFn) -> bytes:
    """Members of every size (some past 64 KiB inflated), maybe truncated, padded or followed by junk."""
    parts = []
    for payload in draw(st.lists(_payload, min_size=1, max_size=4)):
        member = gzip.compress(payload, compresslevel=draw(st.integers(1, 9)))
        if draw(st.integers(0, 9)) == 0:
            member = member[: draw(st.integers(0, len(member) - 1))]
        parts.append(member)
        if draw(st.integers(0, 9)) == 0:
            parts.append(b"\x00" * draw(st.integers(1, 16)))
    if draw(st.integers(0, 9)) == 0:
        parts.append(draw(st.binary(min_size=1, max_size=20)))
    return b"".join(parts)


@settings(max_examples=200, deadline=None)
@given(data=gzip_streams(), limit=st.sampled_from([10, 70_000, 300_000, 10_000_000]))
def test_any_gzip_stream_inflates_as_python_does_or_is_refused(data: bytes, limit: int) -> None:
    got = _inflate_in_time(data, limit)
    expected = _reference(data)
    if isinstance(got, bytes):
        assert got == expected
        assert len(got) <= limit
    elif isinstance(got, TooLarge):
        # Refused for size before the end was read: the part inflated so far was over the limit.
        assert expected is None or len(expected) > limit
    else:
        assert expected is None, got


def test_two_members_past_64_kib_inflate() -> None:
    assert _inflate_in_time(TWO_MEMBERS, 10_000_000) == b"field1=1&" * 11_112 + b"field1=2"


#: Every path that inflates a gzip body, with the key ({key}) or without it: every write endpoint.
GZIP_ENDPOINTS = ENDPOINTS


def _post(url: str, path: str, body: bytes, headers: dict[str, str]) -> int:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
    try:
        conn.request("POST", path, body=body, headers={"Content-Encoding": "gzip", **headers})
        return conn.getresponse().status
    except OSError:
        return 0  # the server may close on a refused body; what matters is that it still answers
    finally:
        conn.close()


def _ping_within(url: str, seconds: float) -> bool:
    parts = urlsplit(url)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=seconds)
        try:
            conn.request("GET", "/ping")
            if conn.getresponse().status == 204:
                return True
        except OSError:
            time.sleep(0.05)
        finally:
            conn.close()
    return False


@pytest.mark.parametrize("server", ["uwsgi", "gunicorn"])
def test_two_member_gzip_never_stalls_the_server(app: Flask, server: str) -> None:
    channel: ChannelKeys = make_channel(make_user().user, name="weather")
    keyed = {"X-THINGSPEAKAPIKEY": channel.write_key, "Authorization": f"Token {channel.write_key}"}
    with SERVERS[server](app, workers=2) as url:  # type: ignore[operator]
        for template in GZIP_ENDPOINTS:
            path = template.replace("{id}", str(channel.id))
            for headers in ({}, keyed):
                keyed_path = path.replace("{key}", channel.write_key if headers else "nokey")
                status = _post(url, keyed_path, TWO_MEMBERS, headers)
                assert status < 500, (keyed_path, status)
                assert _ping_within(url, 2), f"/ping unanswered after {keyed_path}"
        before = readback.count_readings()
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=2)
        conn.request("GET", f"/update?api_key={channel.write_key}&field1=5")
        assert conn.getresponse().read() != b"0"
        conn.close()
    assert readback.count_readings() == before + 1
