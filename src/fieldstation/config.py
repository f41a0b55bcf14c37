"""Configuration classes; values only, nothing read from the environment here.

Precedence (applied in :func:`fieldstation.create_app`): class defaults, then
``instance/config.py``, then ``FIELDSTATION_*`` environment variables, then a
mapping passed by the caller (tests).
"""

from __future__ import annotations

DEV_SECRET_KEY = "dev-only-not-secret"
#: Shortest SECRET_KEY production accepts: a guessable key lets anyone sign a session cookie.
#: ``secrets.token_urlsafe(32)`` gives 43 characters; ``fieldstation init`` writes 64.
MIN_SECRET_KEY = 32


class ConfigError(RuntimeError):
    """A setting the app cannot start with; the CLI prints it as one line."""


class Config:
    """Defaults shared by every environment."""

    SECRET_KEY = DEV_SECRET_KEY
    #: One URL names the database; ``None`` means SQLite in the instance folder.
    DATABASE_URL: str | None = None
    #: What an acknowledged write survives: "power-loss" (synced before the answer; SQLite
    #: synchronous=FULL, PostgreSQL synchronous_commit=on) or "process" (a crash of Fieldstation,
    #: not of the machine or of PostgreSQL). See fieldstation.durability and README "Performance".
    DURABILITY = "power-loss"
    #: Extra engine options. PostgreSQL connections are checked on checkout without a round trip
    #: where that is safe (fieldstation.db); ``{"pool_pre_ping": True}`` pings on every checkout.
    SQLALCHEMY_ENGINE_OPTIONS: dict[str, object] = {}
    #: Largest request body accepted (bytes), before decompression.
    MAX_CONTENT_LENGTH = 16 * 1024 * 1024
    #: Largest body accepted after gzip decompression (bytes).
    MAX_DECOMPRESSED_LENGTH = 64 * 1024 * 1024
    #: Largest body parsed at once (bytes, after gzip decompression): line protocol, JSON, forms and
    #: bulk updates are parsed and stored whole, and a worker's peak grows about 15 bytes per byte of
    #: body, so this keeps a worker under 64 MiB above idle for any accepted request (docs/security.md,
    #: bench/memory.py). Larger bodies get 413 with the reason: send smaller batches.
    MAX_PARSED_BODY = 4 * 1024 * 1024
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
    #: Reverse proxies in front that set X-Forwarded-For/-Proto (0: none; the client's address is the
    #: socket's). The sign-in throttle limits each client address (fieldstation.signin).
    PROXY_COUNT = 0
    #: Seconds a client is told to wait (``Retry-After``) when the database is down or its disk full.
    RETRY_AFTER_S = 30
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
    #: ``fieldstation worker``: seconds between looks at the rules and the outbox.
    ALERT_POLL_S = 1.0
    #: How long a worker holds a delivery it is sending (s); a crashed worker's runs out after this.
    ALERT_LEASE_S = 60
    #: Attempts before a delivery is marked failed; waits between them double from ALERT_RETRY_BASE_S.
    ALERT_MAX_ATTEMPTS = 8
    ALERT_RETRY_BASE_S = 10.0
    #: A webhook's whole exchange, and the most of its answer that is read.
    WEBHOOK_TIMEOUT_S = 10.0
    WEBHOOK_MAX_RESPONSE_BYTES = 65536
    #: E-mail notifications: the SMTP server, "starttls", "tls" (implicit, port 465) or "none".
    SMTP_HOST: str | None = None
    SMTP_PORT: int | None = None
    SMTP_SECURITY = "starttls"
    SMTP_USERNAME: str | None = None
    SMTP_PASSWORD: str | None = None
    SMTP_FROM = "fieldstation@localhost"
    SMTP_TIMEOUT_S = 10.0
    SMTP_CA_FILE: str | None = None
    #: MQTT notifications: the broker (mqtt://user:pass@host:1883 or mqtts://…) and its CA file.
    ALERT_MQTT_URL: str | None = None
    ALERT_MQTT_CA_FILE: str | None = None
    #: ``fieldstation worker``'s schedule (s): retention, rollup refresh, devices-seen compaction.
    WORKER_RETENTION_EVERY_S = 3600
    WORKER_ROLLUPS_EVERY_S = 300
    WORKER_COMPACT_EVERY_S = 3600
    #: The session cookie is never sent with another site's requests (CSRF), in every environment.
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_HTTPONLY = True
    JSON_SORT_KEYS = False
    #: The app carries the ``fieldstation`` commands and Flask-Migrate; a web worker's does not
    #: (``serving.served_app``), which saves importing Alembic and the workers' modules.
    COMMANDS = True
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
