"""Nothing a client sends to a write endpoint produces a 500: random bytes, garbage, huge bodies."""

from __future__ import annotations

import gzip
import http.client
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import readback
from tests.factories import ChannelKeys
from tests.liveserver import SERVERS

ENDPOINTS = [
    "/update",
    "/update.json",
    "/update.xml",
    "/update/API_key={key}/mac=aa/field=1/data=1",
    "/channels/{id}/bulk_update.json",
    "/channels/{id}/bulk_update.csv",
    "/api/v1/channels/{id}/entries",
    "/write?db=weather",
]
_CONTENT_TYPES = [
    None,
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "multipart/form-data",
    "text/plain; charset=utf-8",
    "application/octet-stream",
]


def _path(template: str, channel: ChannelKeys) -> str:
    return template.replace("{key}", channel.write_key).replace("{id}", str(channel.id))


def _auth(channel: ChannelKeys) -> dict[str, str]:
    key = channel.write_key
    return {"X-THINGSPEAKAPIKEY": key, "Authorization": f"Token {key}", "X-Fieldstation-Key": key}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    body=st.one_of(st.binary(max_size=2000), st.text(max_size=500).map(str.encode)),
    content_type=st.sampled_from(_CONTENT_TYPES),
    gzipped=st.sampled_from([None, "gzip", "deflate", "br"]),
    query=st.text(max_size=40),
    with_key=st.booleans(),
)
def test_random_bodies_never_500(
    client: FlaskClient,
    channel: ChannelKeys,
    body: bytes,
    content_type: str | None,
    gzipped: str | None,
    query: str,
    with_key: bool,
) -> None:
    headers = _auth(channel) if with_key else {}
    if content_type:
        headers["Content-Type"] = content_type
    if gzipped:
        headers["Content-Encoding"] = gzipped
        if gzipped == "gzip" and len(body) % 2:
            body = gzip.compress(body)
    for template in ENDPOINTS:
        path = _path(template, channel)
        path += ("&" if "?" in path else "?") + query.replace("#", "")
        for method in (
            ("POST", "GET") if not template.startswith(("/channels", "/api", "/write")) else ("POST",)
        ):
            response = client.open(path, method=method, data=body, headers=headers)
            assert response.status_code < 500, (path, response.status_code, response.data[:200])


@pytest.mark.parametrize("template", ENDPOINTS)
def test_huge_bodies_are_413(client: FlaskClient, channel: ChannelKeys, template: str) -> None:
    huge = b"\xff garbage \x00" * (100 * 1024 * 1024 // 11)  # ~100 MB
    response = client.post(_path(template, channel), data=huge, headers=_auth(channel))
    assert response.status_code == 413
    assert readback.count_readings() == 0


@pytest.mark.parametrize("serve", list(SERVERS.values()), ids=list(SERVERS))
def test_huge_chunked_body_over_the_wire(app: Flask, channel: ChannelKeys, serve: object) -> None:
    """No Content-Length: the limit must still hold while the body streams in."""
    app.config["MAX_CONTENT_LENGTH"] = 1024 * 1024
    with serve(app) as url:  # type: ignore[operator]
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=20)
        chunks = (b"m v=1\n" * 10_000 for _ in range(60))  # 3.6 MB
        try:
            conn.request(
                "POST", "/write?db=weather", body=chunks, headers=_auth(channel), encode_chunked=True
            )
            reply = conn.getresponse()
            status = reply.status
        except (BrokenPipeError, ConnectionResetError):
            status = 413  # the server answered and closed before the client finished sending
        finally:
            conn.close()
    assert status == 413
    assert readback.count_readings() == 0
