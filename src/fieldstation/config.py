"""Configuration classes; values only, nothing read from the environment here.

Precedence (applied in :func:`fieldstation.create_app`): class defaults, then
``instance/config.py``, then ``FIELDSTATION_*`` environment variables, then a
mapping passed by the caller (tests).
"""

from __future__ import annotations

DEV_SECRET_KEY = "dev-only-not-secret"


class ConfigError(RuntimeError):
    """A setting the app cannot start with; the CLI prints it as one line."""


class Config:
    """Defaults shared by every environment."""

    SECRET_KEY = DEV_SECRET_KEY
    #: One URL names the database; ``None`` means SQLite in the instance folder.
    DATABASE_URL: str | None = None
    #: Extra engine options. PostgreSQL connections are checked on checkout without a round trip
    #: where that is safe (fieldstation.db); ``{"pool_pre_ping": True}`` pings on every checkout.
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, object] = {}
    #: Largest request body accepted (bytes), before decompression.
    MAX_CONTENT_LENGTH = 16 * 1024 * 1024
    #: Largest body accepted after gzip decompression (bytes).
    MAX_DECOMPRESSED_LENGTH = 64 * 1024 * 1024
    #: Most entries one JSON write may carry.
    MAX_BATCH_ENTRIES = 10_000
    #: Most fields a channel may have (line protocol creates them on first write).
    MAX_FIELDS_PER_CHANNEL = 200
    #: ThingSpeak's `results` cap and default.
    MAX_RESULTS = 8000
    DEFAULT_RESULTS = 100
    #: Device writes (``/update``, the seed URL, ``/write``) skip Flask's request machinery
    #: (fieldstation.http.hotpath); every other request, and every refusal, is Flask's.
    DEVICE_HOT_PATH = True
    #: SQLite waits this long (ms) for another writer before giving up.
    SQLITE_BUSY_TIMEOUT_MS = 10_000
    #: MQTT worker: most messages per transaction, and longest wait to fill one (ms).
    MQTT_BATCH_SIZE = 1000
    MQTT_BATCH_INTERVAL_MS = 200
    #: How long the broker keeps a stopped worker's session and unacknowledged messages (s).
    MQTT_SESSION_EXPIRY_S = 3600
    #: How long the MQTT worker reuses a key check or field-name lookup (s).
    MQTT_AUTH_CACHE_S = 10
    #: Tasmota devices: {"<device>": {"channel": 3, "fields": {"AM2301.Temperature": 1}}}.
    MQTT_TASMOTA: dict[str, object] = {}
    #: E-mail rules for ``fieldstation mail`` (docs/workers.md).
    MAIL_RULES: list[dict[str, object]] = []
    #: Who may read ``/metrics``: "loopback", "open", or "token" (``Authorization: Bearer METRICS_TOKEN``).
    METRICS_ACCESS = "loopback"
    METRICS_TOKEN: str | None = None
    #: The session cookie is never sent with another site's requests (CSRF), in every environment.
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_HTTPONLY = True
    JSON_SORT_KEYS = False
    TESTING = False
    DEBUG = False


class DevelopmentConfig(Config):
    """Local development: debug on, dev secret allowed."""

    DEBUG = True


class TestingConfig(Config):
    """Test runs: no CSRF, errors propagate to the test client."""

    TESTING = True
    WTF_CSRF_ENABLED = False


class ProductionConfig(Config):
    """Production: a real SECRET_KEY is required (checked in create_app)."""

    SESSION_COOKIE_SECURE = True


CONFIGS: dict[str, type[Config]] = {
    "development": DevelopmentConfig,
    "testing": TestingConfig,
    "production": ProductionConfig,
}
