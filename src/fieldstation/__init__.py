"""Fieldstation: a self-hosted server for sensor data."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from fieldstation.config import CONFIGS, DEV_SECRET_KEY, Config, ConfigError
from fieldstation.serving import adapt_to_server, refuse_unreadable_body

#: The repository root holds ``migrations/`` (the package is installed editable).
ROOT = Path(__file__).resolve().parents[2]


def create_app(config: Mapping[str, Any] | str | None = None) -> Flask:
    """Build an app: class defaults, then instance/config.py, then FIELDSTATION_* env, then ``config``.

    ``config`` is a mapping (tests) or the name of a config class
    (``development``, ``testing``, ``production``); the class can also be
    chosen with ``FIELDSTATION_ENV``. Defaults to production.
    """
    env_name = config if isinstance(config, str) else os.environ.get("FIELDSTATION_ENV", "production")
    if env_name not in CONFIGS:
        raise ConfigError(f"FIELDSTATION_ENV must be one of {', '.join(CONFIGS)}, not {env_name!r}")
    app = Flask(__name__, instance_path=default_instance_path(), instance_relative_config=True)
    app.config.from_object(CONFIGS[env_name])
    app.config.from_pyfile("config.py", silent=True)
    app.config.from_prefixed_env("FIELDSTATION")
    if isinstance(config, Mapping):
        app.config.from_mapping(config)
    _finish_config(app, env_name)

    register_extensions(app)
    register_blueprints(app)
    register_cli(app)
    from fieldstation.http import hotpath

    hotpath.install(app)
    app.before_request(refuse_unreadable_body)
    max_body = app.config["MAX_CONTENT_LENGTH"] or Config.MAX_CONTENT_LENGTH
    app.wsgi_app = adapt_to_server(app.wsgi_app, int(max_body))  # type: ignore[method-assign,assignment]
    from fieldstation.http import health

    health.install(app)  # outermost: times every request, the hot path's too
    return app


def _finish_config(app: Flask, env_name: str) -> None:
    """Derive SQLAlchemy's URL from DATABASE_URL and refuse unsafe production settings."""
    os.makedirs(app.instance_path, exist_ok=True)
    url = app.config.get("DATABASE_URL") or f"sqlite:///{Path(app.instance_path) / 'fieldstation.db'}"
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        # psycopg 3 is the driver we ship; accept the plain URL users copy from elsewhere.
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    app.config["DATABASE_URL"] = url
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    if not url.startswith("sqlite"):
        # A server may restart under us: pooled connections are checked before use, by
        # db.init_app without a round trip where that is safe (pool_pre_ping=True forces one).
        options = {"pool_pre_ping": False, **app.config["SQLALCHEMY_ENGINE_OPTIONS"]}
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options
    app.config["FIELDSTATION_ENV"] = env_name
    if env_name == "production" and app.config["SECRET_KEY"] in (None, "", DEV_SECRET_KEY):
        raise ConfigError(
            "refusing to start in production with the default SECRET_KEY: set FIELDSTATION_SECRET_KEY "
            f"or SECRET_KEY in {Path(app.instance_path) / 'config.py'} "
            "(`python -m fieldstation.instance` writes one)"
        )


def default_instance_path() -> str:
    """The instance folder: FIELDSTATION_INSTANCE_PATH, else ``instance/`` in the checkout."""
    return os.environ.get("FIELDSTATION_INSTANCE_PATH") or str(ROOT / "instance")


def register_extensions(app: Flask) -> None:
    """Bind the database and migrations."""
    from fieldstation import db as database
    from fieldstation import jsonprovider
    from fieldstation.extensions import db, migrate
    from fieldstation.store import release_request_connection

    jsonprovider.init_app(app)
    database.init_app(app)
    app.teardown_request(release_request_connection)
    migrate.init_app(app, db, directory=str(ROOT / "migrations"))


def register_blueprints(app: Flask) -> None:
    """Mount every interface and the shared error handlers."""
    from fieldstation.errors import register_error_handlers
    from fieldstation.http import RowNumber, api_bp, no_sniffing
    from fieldstation.http import alerts as _alerts  # noqa: F401  (routes on api_bp)
    from fieldstation.http import data as _data  # noqa: F401  (routes on api_bp)
    from fieldstation.http import devices_seen as _devices_seen  # noqa: F401  (routes on api_bp)
    from fieldstation.http import entries as _entries  # noqa: F401  (routes on api_bp)
    from fieldstation.http import manage as _manage  # noqa: F401  (routes on api_bp)
    from fieldstation.http import openapi as _openapi  # noqa: F401  (routes on api_bp)

    app.url_map.converters["int"] = RowNumber  # before any rule is added
    register_error_handlers(app)
    app.register_blueprint(api_bp)
    app.after_request(no_sniffing)
    from fieldstation.http.influx_query import influx_query_bp
    from fieldstation.http.influx_write import influx_write_bp
    from fieldstation.http.seed import seed_bp
    from fieldstation.http.thingspeak_read import thingspeak_read_bp
    from fieldstation.http.thingspeak_write import thingspeak_write_bp

    app.register_blueprint(thingspeak_read_bp)
    app.register_blueprint(influx_query_bp)
    app.register_blueprint(thingspeak_write_bp)
    app.register_blueprint(seed_bp)
    app.register_blueprint(influx_write_bp)
    from fieldstation.http.health import health_bp

    app.register_blueprint(health_bp)
    from fieldstation.dashboard import init_app as init_dashboard

    init_dashboard(app)


def register_cli(app: Flask) -> None:
    """Add Fieldstation's commands to ``flask``/``fieldstation``."""
    from fieldstation.cli import register_commands

    register_commands(app)
