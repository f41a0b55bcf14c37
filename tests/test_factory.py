"""Configuration precedence and safety of the application factory."""

from __future__ import annotations

from pathlib import Path

import pytest

from fieldstation import create_app


def test_defaults_to_sqlite_in_instance_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDSTATION_INSTANCE_PATH", str(tmp_path))
    app = create_app("development")
    assert app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'fieldstation.db'}"


def test_instance_file_then_env_then_mapping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDSTATION_INSTANCE_PATH", str(tmp_path))
    (tmp_path / "config.py").write_text(
        "MAX_RESULTS = 10\nDEFAULT_RESULTS = 5\nSECRET_KEY = 'from-file-0123456789-0123456789-0123456789'\n"
    )
    monkeypatch.setenv("FIELDSTATION_DEFAULT_RESULTS", "7")
    app = create_app({"TESTING": True})
    assert app.config["MAX_RESULTS"] == 10  # instance file
    assert app.config["DEFAULT_RESULTS"] == 7  # env beats file
    app = create_app({"DEFAULT_RESULTS": 3})
    assert app.config["DEFAULT_RESULTS"] == 3  # caller's mapping beats env


def test_production_refuses_default_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDSTATION_INSTANCE_PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="SECRET_KEY"):
        create_app("production")
    monkeypatch.setenv("FIELDSTATION_SECRET_KEY", "a" * 40)
    assert create_app("production").config["SECRET_KEY"] == "a" * 40


def test_instance_config_written_once(tmp_path: Path) -> None:
    from fieldstation.instance import ensure_config

    path = ensure_config(str(tmp_path / "inst"))
    first = path.read_text()
    assert "SECRET_KEY" in first
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert ensure_config(str(tmp_path / "inst")).read_text() == first


def test_postgres_url_gets_psycopg3_driver(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIELDSTATION_INSTANCE_PATH", str(tmp_path))
    monkeypatch.setenv("FIELDSTATION_DATABASE_URL", "postgresql://u:p@127.0.0.1/db")
    app = create_app("development")
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@127.0.0.1/db"


def test_unknown_environment_is_refused() -> None:
    with pytest.raises(RuntimeError, match="FIELDSTATION_ENV"):
        create_app("staging")


def test_sqlite_pragmas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every SQLite connection runs in WAL mode with foreign keys on and a busy timeout."""
    from fieldstation.extensions import db

    monkeypatch.setenv("FIELDSTATION_INSTANCE_PATH", str(tmp_path))
    app = create_app(
        {"TESTING": True, "DATABASE_URL": f"sqlite:///{tmp_path / 'p.db'}", "SECRET_KEY": "x" * 32}
    )
    with app.app_context(), db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 10_000
    with app.app_context():
        db.engine.dispose()
