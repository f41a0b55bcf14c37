"""Fixtures: an app per database engine (SQLite and a real PostgreSQL), clean for every test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from hypothesis import settings

from fieldstation import create_app
from fieldstation.extensions import db
from fieldstation.models import Base
from tests import pgserver
from tests.factories import Account, ChannelKeys, make_channel, make_user
from tests.servers import InfluxDB, start_influxdb

#: Long enough for production's minimum (config.MIN_SECRET_KEY); the tests run ProductionConfig.
TEST_SECRET = "test-secret-not-for-production-0123456789"
IN_CI = os.environ.get("CI", "").lower() == "true"

# Property tests explore new random inputs on every local run; in CI they replay a fixed
# sequence, so a run that passed once passes again and a landing never hinges on luck.
# Failures found locally are fixed and kept as explicit regression tests.
settings.register_profile("ci", derandomize=True, print_blob=True)
if IN_CI:
    settings.load_profile("ci")
ENGINES = ["sqlite", "postgres"]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No FIELDSTATION_* setting from the caller's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("FIELDSTATION_") and name != "FIELDSTATION_TEST_DATABASE_URL":
            monkeypatch.delenv(name)


def unavailable(reason: str) -> None:
    """Skip locally; in CI a missing backing server is a failure, never a skip."""
    if IN_CI:
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def influxdb() -> Iterator[InfluxDB]:
    """One InfluxDB 1.6 per test module, on free loopback ports (the differential tests)."""
    try:
        server = start_influxdb()
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """URL of an empty PostgreSQL database: FIELDSTATION_TEST_DATABASE_URL, else a throwaway cluster."""
    given = os.environ.get("FIELDSTATION_TEST_DATABASE_URL")
    if given:
        yield given
        return
    try:
        cluster = pgserver.start_cluster()
    except RuntimeError as exc:
        unavailable(str(exc))
        return
    try:
        yield cluster.url
    finally:
        cluster.stop()


def make_app(url: str, instance: Path, **extra: Any) -> Flask:
    """An app in testing mode on ``url``."""
    os.environ["FIELDSTATION_INSTANCE_PATH"] = str(instance)
    try:
        return create_app({"TESTING": True, "DATABASE_URL": url, "SECRET_KEY": TEST_SECRET, **extra})
    finally:
        del os.environ["FIELDSTATION_INSTANCE_PATH"]


def migrate_to_head(app: Flask) -> None:
    """The schema comes from the migrations, never from create_all()."""
    from flask_migrate import upgrade

    with app.app_context():
        upgrade()
        db.engine.dispose()


def reset_schema(url: str) -> None:
    """Drop everything in the PostgreSQL database (a previous run may have left tables)."""
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA public CASCADE"))
        conn.execute(sa.text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(scope="session")
def database_urls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Lazily migrated database URL per engine, shared by the session."""
    return {"_tmp": tmp_path_factory.mktemp("dbs")}


def migrated_url(engine: str, request: pytest.FixtureRequest, urls: dict[str, Any]) -> str:
    if engine in urls:
        return str(urls[engine])
    tmp: Path = urls["_tmp"]
    if engine == "sqlite":
        url = f"sqlite:///{tmp / 'test.db'}"
    else:
        url = request.getfixturevalue("postgres_server")
        reset_schema(url)
    migrate_to_head(make_app(url, tmp / "instance"))
    urls[engine] = url
    return url


@pytest.fixture(params=ENGINES)
def engine_name(request: pytest.FixtureRequest) -> str:
    """Which database engine this test runs on."""
    return str(request.param)


@pytest.fixture
def app(
    engine_name: str, request: pytest.FixtureRequest, database_urls: dict[str, Any], tmp_path: Path
) -> Iterator[Flask]:
    """A migrated, empty database on each engine; emptied again after the test."""
    url = migrated_url(engine_name, request, database_urls)
    application = make_app(url, tmp_path / "instance")
    with application.app_context():
        yield application
        db.session.remove()
        truncate_all()
        db.engine.dispose()


def truncate_all() -> None:
    """Empty every model table (the alembic_version table stays)."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with db.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
        else:
            for name in tables:
                conn.execute(sa.text(f"DELETE FROM {name}"))
            # As RESTART IDENTITY: AUTOINCREMENT's counters (channels, migration 0011) start again.
            conn.execute(sa.text("DELETE FROM sqlite_sequence"))


def inside_metrics(app: Flask) -> Any:
    """The app's WSGI layer under the request metrics (``http.health``), the outermost one."""
    from fieldstation.http.health import RequestMetrics

    layer = app.wsgi_app
    return layer.app if isinstance(layer, RequestMetrics) else layer


@pytest.fixture
def flask_only(app: Flask, tmp_path: Path) -> Iterator[Flask]:
    """``app`` on the same database without the device hot path: the answers it must match."""
    from fieldstation.http.hotpath import DeviceWrites

    twin = make_app(app.config["DATABASE_URL"], tmp_path / "flask-only-instance", DEVICE_HOT_PATH=False)
    assert not isinstance(inside_metrics(twin), DeviceWrites)
    yield twin
    with twin.app_context():
        db.engine.dispose()


@pytest.fixture
def owner(app: Flask) -> Account:
    """The user "alice", with a user key."""
    return make_user()


@pytest.fixture
def channel(owner: Account, request: pytest.FixtureRequest) -> ChannelKeys:
    """A channel of ``owner`` ("alice"), with a write and a read key.

    ``@pytest.mark.channel(name=..., fields=[...], public=True)`` on a test or module
    shapes it; a module that needs readings in it overrides this fixture and writes them.
    """
    marker = request.node.get_closest_marker("channel")
    return make_channel(owner.user, **(marker.kwargs if marker else {}))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def pytest_report_header(config: pytest.Config) -> str:
    return f"fieldstation tests: engines {', '.join(ENGINES)}; CI={IN_CI}"


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Say where the browser tests left their screenshots (for a person to look at)."""
    folder = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
    if folder.is_dir() and any(folder.glob("*.png")):
        terminalreporter.write_line(f"browser screenshots: {folder}")
