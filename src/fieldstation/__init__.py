"""Fieldstation: a self-hosted server for sensor data."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask

from fieldstation.config import Config
from fieldstation.instance import MIGRATIONS
from fieldstation.serving import adapt_to_server, refuse_unreadable_body
from fieldstation.settings import configured_app


def create_app(config: Mapping[str, Any] | str | None = None) -> Flask:
    """Build an app: class defaults, then instance/config.py, then FIELDSTATION_* env, then ``config``.

    ``config`` is a mapping (tests) or the name of a config class
    (``development``, ``testing``, ``production``); the class can also be
    chosen with ``FIELDSTATION_ENV``. Defaults to production.
    """
    app = configured_app(config)
    register_extensions(app)
    register_blueprints(app)
    if app.config["COMMANDS"]:
        register_cli(app)
    from fieldstation.http import hotpath

    hotpath.install(app)
    app.before_request(refuse_unreadable_body)
    max_body = app.config["MAX_CONTENT_LENGTH"] or Config.MAX_CONTENT_LENGTH
    app.wsgi_app = adapt_to_server(app.wsgi_app, int(max_body))  # type: ignore[method-assign,assignment]
    proxies = int(app.config["PROXY_COUNT"] or 0)
    if proxies:  # the client's address and scheme as the proxies in front saw them
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies)  # type: ignore[method-assign]
    from fieldstation.http import health

    health.install(app)  # outermost: times every request, the hot path's too
    return app


def register_extensions(app: Flask) -> None:
    """Bind the database, and the migrations when the app serves commands (``COMMANDS``)."""
    from fieldstation import db as database
    from fieldstation import jsonprovider
    from fieldstation.extensions import db, make_migrate

    jsonprovider.init_app(app)
    database.init_app(app)
    if app.config["COMMANDS"]:
        make_migrate().init_app(app, db, directory=str(MIGRATIONS))


def register_blueprints(app: Flask) -> None:
    """Mount every interface and the shared error handlers."""
    from fieldstation.http import RowNumber, api_bp, no_sniffing
    from fieldstation.http import alerts as _alerts  # noqa: F401  (routes on api_bp)
    from fieldstation.http import data as _data  # noqa: F401  (routes on api_bp)
    from fieldstation.http import devices_seen as _devices_seen  # noqa: F401  (routes on api_bp)
    from fieldstation.http import entries as _entries  # noqa: F401  (routes on api_bp)
    from fieldstation.http import imports as _imports  # noqa: F401  (routes on api_bp)
    from fieldstation.http import manage as _manage  # noqa: F401  (routes on api_bp)
    from fieldstation.http import metadata as _metadata  # noqa: F401  (routes on api_bp)
    from fieldstation.http import openapi as _openapi  # noqa: F401  (routes on api_bp)
    from fieldstation.http.errors import register_error_handlers

    app.url_map.converters["int"] = RowNumber  # before any rule is added
    register_error_handlers(app)
    from fieldstation.http import outage

    outage.register(app)
    app.register_blueprint(api_bp)
    app.after_request(no_sniffing)
    from fieldstation.http.influx_query import influx_query_bp
    from fieldstation.http.influx_v2 import influx_v2_bp
    from fieldstation.http.influx_write import influx_write_bp
    from fieldstation.http.seed import seed_bp
    from fieldstation.http.thingspeak_read import thingspeak_read_bp
    from fieldstation.http.thingspeak_write import thingspeak_write_bp

    app.register_blueprint(thingspeak_read_bp)
    app.register_blueprint(influx_query_bp)
    app.register_blueprint(thingspeak_write_bp)
    app.register_blueprint(seed_bp)
    app.register_blueprint(influx_write_bp)
    app.register_blueprint(influx_v2_bp)
    from fieldstation.http.health import health_bp

    app.register_blueprint(health_bp)
    from fieldstation.dashboard import init_app as init_dashboard

    init_dashboard(app)


def register_cli(app: Flask) -> None:
    """Add Fieldstation's commands to ``flask``/``fieldstation``."""
    from fieldstation.cli import register_commands

    register_commands(app)
