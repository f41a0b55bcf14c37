"""Fieldstation's settings resolved into a bare Flask app: defaults, instance file, environment.

Apart from the app factory so that a command needing only the settings (``serve``
checks the database before the server starts) reads them without building the app.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask

from fieldstation.config import CONFIGS, DEV_SECRET_KEY, MIN_SECRET_KEY, ConfigError
from fieldstation.instance import default_instance_path


def configured_app(config: Mapping[str, Any] | str | None = None) -> Flask:
    """A bare Flask app with Fieldstation's settings resolved (as :func:`create_app` reads them), no more.

    ``fieldstation serve`` needs only the database URL before it starts the server;
    building the whole app for that would double the time to the first answer.
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
    secret = app.config["SECRET_KEY"]
    if env_name == "production" and (secret == DEV_SECRET_KEY or len(secret or "") < MIN_SECRET_KEY):
        raise ConfigError(
            f"refusing to start in production with the default SECRET_KEY or one under {MIN_SECRET_KEY} "
            "characters: set FIELDSTATION_SECRET_KEY or SECRET_KEY in "
            f"{Path(app.instance_path) / 'config.py'} "
            "(`fieldstation init` writes one)"
        )
