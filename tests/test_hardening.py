"""Issue 17, item 6: large request heads and chunks, private files, a strong SECRET_KEY, 503 for
outages, JSON bodies on /update.json, no tracebacks for clients that stall or go away.

(The sign-in throttle's tests are in test_dashboard.py.)
"""

from __future__ import annotations

import http.client
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from fieldstation import create_app
from fieldstation.backup import backup
from fieldstation.config import ConfigError
from fieldstation.extensions import db
from tests import readback
from tests.conftest import make_app, migrate_to_head
from tests.factories import ChannelKeys, make_channel, make_user
from tests.liveserver import SERVERS, served
from tests.pgserver import free_port

LIVE = ["uwsgi", "gunicorn"]


@pytest.fixture
def channel(app: Flask) -> ChannelKeys:
    return make_channel(make_user().user)


def _raw(url: str, request: bytes, timeout: float = 10) -> bytes:
    """Send ``request`` as is and read the answer until the server closes."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname or "", parts.port or 80), timeout=timeout) as sock:
        try:
            sock.sendall(request)
        except OSError:
            pass  # a server may answer before it has read everything
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
        except ConnectionResetError:
            pass
        return answer


# -- request heads over the limit: 414 / 431, not a reset ------------------------------------


UWSGI_HEADS = pytest.mark.xfail(
    strict=True,
    reason="uWSGI resets a head over --buffer-size (64 KiB at most) without an answer, in the "
    "http-socket and in its http router alike; no option changes it (docs/decisions.md, Hardening)",
)


@pytest.mark.parametrize("server", [pytest.param("uwsgi", marks=UWSGI_HEADS), "gunicorn"])
@pytest.mark.parametrize("engine_name", ["sqlite"])
def test_oversized_request_heads_are_414_and_431(app: Flask, server: str) -> None:
    with SERVERS[server](app) as url:  # type: ignore[operator]
        line = _raw(url, b"GET /ping?" + b"a" * 70_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert line.startswith(b"HTTP/1.1 414") or line.startswith(b"HTTP/1.0 414"), line[:80]
        head = _raw(url, b"GET /ping HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70_000 + b"\r\n\r\n")
        assert head.split(b" ", 2)[1] == b"431", head[:80]


# -- a chunked /write with a chunk of 1 MiB or more ------------------------------------------


@pytest.mark.parametrize("server", LIVE)
@pytest.mark.parametrize("engine_name", ["sqlite"])
def test_chunked_write_with_a_two_mib_chunk_is_stored(app: Flask, channel: ChannelKeys, server: str) -> None:
    lines = b"".join(b"weather temperature=%d %d\n" % (i, 1_700_000_000 + i) for i in range(80_000))
    assert len(lines) > 2 * 1024 * 1024
    head = (
        b"POST /write?db=weather&precision=s HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Authorization: Token " + channel.write_key.encode() + b"\r\n\r\n"
    )
    body = b"%x\r\n" % len(lines) + lines + b"\r\n0\r\n\r\n"
    with SERVERS[server](app) as url:  # type: ignore[operator]
        answer = _raw(url, head + body, timeout=60)
    assert answer.split(b" ", 2)[1] == b"204", answer[:200]
    assert readback.count_readings() == 80_000


# -- files holding key hashes are private ----------------------------------------------------


def _private(path: Path) -> bool:
    return path.exists() and stat.S_IMODE(path.stat().st_mode) & 0o077 == 0


def test_sqlite_database_files_are_created_0600(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    app = make_app(f"sqlite:///{path}", tmp_path / "instance")
    migrate_to_head(app)
    with app.app_context():
        with db.engine.connect() as conn:  # the WAL and shared-memory files exist while connected
            conn.exec_driver_sql("SELECT count(*) FROM users").scalar()
            for name in ("new.db", "new.db-wal", "new.db-shm"):
                assert _private(tmp_path / name), oct((tmp_path / name).stat().st_mode)
        db.engine.dispose()


def test_backups_are_created_0600(app: Flask, channel: ChannelKeys, tmp_path: Path) -> None:
    target = backup(app.config["DATABASE_URL"], tmp_path / "copy.backup")
    assert _private(target), oct(target.stat().st_mode)


# -- SECRET_KEY strength in production -------------------------------------------------------


@pytest.mark.parametrize("secret", ["x", "a" * 31])
def test_production_refuses_a_short_secret_key(
    secret: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FIELDSTATION_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("FIELDSTATION_SECRET_KEY", secret)
    with pytest.raises(ConfigError, match="32 characters"):
        create_app("production")
    monkeypatch.setenv("FIELDSTATION_SECRET_KEY", "a" * 32)
    assert create_app("production").config["SECRET_KEY"] == "a" * 32


# -- 503 and Retry-After when the database is down or its disk is full -----------------------


@pytest.fixture
def down(tmp_path: Path) -> Iterator[FlaskClient]:
    """An app whose PostgreSQL server is not there (nothing listens on its port)."""
    app = make_app(f"postgresql+psycopg://nobody:pw@127.0.0.1:{free_port()}/none", tmp_path / "instance")
    with app.app_context():
        yield app.test_client()


def _unavailable(response: object, body: bytes | None = None) -> None:
    assert response.status_code == 503, (response.status_code, response.data[:200])  # type: ignore[attr-defined]
    assert int(response.headers["Retry-After"]) > 0  # type: ignore[attr-defined]
    if body is not None:
        assert response.data == body  # type: ignore[attr-defined]


def test_a_database_outage_is_503_with_retry_after(down: FlaskClient) -> None:
    _unavailable(down.get("/update?api_key=K&field1=1"), b"0")  # the hot path, as ThingSpeak answers
    _unavailable(down.post("/update", data={"api_key": "K", "field1": "1"}), b"0")
    _unavailable(down.post("/update.json", json={"api_key": "K", "field1": 1}), b"0")
    _unavailable(down.post("/write?db=x", data=b"m v=1", headers={"Authorization": "Token K"}))
    _unavailable(down.get("/channels/1/feeds.json"))
    _unavailable(down.get("/api/v1/channels", headers={"Authorization": "Bearer K"}))
    _unavailable(down.post("/channels/1/bulk_update.json", json={"write_api_key": "K", "updates": []}))


@pytest.mark.parametrize("engine_name", ["sqlite"])
def test_a_full_disk_is_503_with_retry_after(app: Flask, channel: ChannelKeys, client: FlaskClient) -> None:
    """SQLite's max_page_count makes the database full as a full disk would (SQLITE_FULL)."""

    def cap(dbapi_connection: object, _record: object) -> None:
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]  # type: ignore[attr-defined]
        dbapi_connection.execute(f"PRAGMA max_page_count={pages + 5}")  # type: ignore[attr-defined]

    channel_id, write_key = channel.id, channel.write_key
    db.session.commit()
    with db.engine.connect() as conn:  # free pages left by earlier tests would take writes past the cap
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM")
    sa.event.listen(db.engine, "connect", cap)
    try:
        db.session.remove()
        db.engine.dispose()
        before = readback.count_readings()
        for sent in range(20_000):  # single readings until the database is full
            response = client.get(f"/update?api_key={write_key}&field1={sent}")
            if response.status_code != 200:
                break
        _unavailable(response, b"0")
        assert readback.count_readings() == before + sent  # each one answered 200 was stored
        big = {
            "write_api_key": write_key,
            "updates": [{"delta_t": 1, "field1": i} for i in range(5000)],
        }
        _unavailable(client.post(f"/channels/{channel_id}/bulk_update.json", json=big))
        assert readback.count_readings() == before + sent
    finally:
        sa.event.remove(db.engine, "connect", cap)
        db.session.remove()
        db.engine.dispose()


# -- JSON bodies on POST /update.json --------------------------------------------------------


def test_update_json_takes_a_json_body(client: FlaskClient, channel: ChannelKeys) -> None:
    """ThingSpeak's documented JSON write: ``{"api_key": …, "field1": 73}``."""
    response = client.post("/update.json", json={"api_key": channel.write_key, "field1": 73, "field2": "4.5"})
    assert response.status_code == 200, response.data
    assert response.json["field1"] == "73" and response.json["field2"] == "4.5"
    assert readback.values_by_field(channel.id) == {"temperature": [73.0], "humidity": [4.5]}
    nested = client.post("/update.json", json={"api_key": channel.write_key, "field1": [1]})
    assert nested.status_code == 200 and nested.data == b"0"  # refused the ThingSpeak way, nothing stored
    assert readback.count_readings() == 2


# -- a client that stalls or goes away on the /write fast path -------------------------------


@pytest.mark.parametrize("server", LIVE)
@pytest.mark.parametrize("engine_name", ["sqlite"])
def test_a_client_that_stalls_mid_body_logs_no_traceback(
    app: Flask, channel: ChannelKeys, server: str
) -> None:
    head = (
        "POST /write?db=weather HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n"
        f"Authorization: Token {channel.write_key}\r\n\r\nweather temperature=1"
    ).encode()
    with served(app, server) as (url, proc):
        parts = urlsplit(url)
        stalled = socket.create_connection((parts.hostname or "", parts.port or 80))
        stalled.sendall(head)
        time.sleep(6)  # past uWSGI's 4 s socket timeout
        stalled.close()
        gone = socket.create_connection((parts.hostname or "", parts.port or 80))
        gone.sendall(head)
        gone.close()
        time.sleep(1)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=10)
        conn.request("GET", "/ping")
        assert conn.getresponse().status == 204
        conn.close()
        proc.terminate()
        log = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    assert "Traceback" not in log, log[-3000:]
    assert readback.count_readings() == 0


# -- bodies parsed whole are capped, so a worker's memory is (bench/memory.py) -------------------


def test_bodies_over_the_parse_limit_are_413_with_the_reason(app: Flask, channel: ChannelKeys) -> None:
    """Line protocol, JSON and forms are parsed whole; past MAX_PARSED_BODY they are refused, plain
    or gzipped, on the device hot path and in Flask, and nothing is stored."""
    import gzip

    app.config["MAX_PARSED_BODY"] = 10_000
    client = app.test_client()
    lines = b"".join(b"weather temperature=%d %d\n" % (i, 1_700_000_000 + i) for i in range(1000))
    assert 10_000 < len(lines) < app.config["MAX_CONTENT_LENGTH"]
    auth = {"Authorization": f"Token {channel.write_key}"}
    for body, headers in ((lines, auth), (gzip.compress(lines), {**auth, "Content-Encoding": "gzip"})):
        refused = client.post("/write?db=weather&precision=s", data=body, headers=headers)
        assert refused.status_code == 413, refused.data
        assert b"MAX_PARSED_BODY" in refused.data or b"inflates to more than 10000" in refused.data
    entries = [{"time": 1_700_000_000_000 + i, "values": {"temperature": i}} for i in range(1000)]
    api = client.post(
        f"/api/v1/channels/{channel.id}/entries",
        json=entries,
        headers={"Authorization": f"Bearer {channel.write_key}"},
    )
    assert api.status_code == 413 and "MAX_PARSED_BODY" in api.json["error"]["message"]
    form = client.post("/update", data={"api_key": channel.write_key, "field1": "1", "status": "s" * 10_000})
    assert form.status_code == 413 and form.data == b"0"
    assert readback.count_readings() == 0
    small = client.post("/write?db=weather&precision=s", data=lines[:5000], headers=auth)
    assert small.status_code == 204
