"""What an acknowledged write survives: the DURABILITY setting and how each engine is told.

``"power-loss"`` (the default): a reading answered 200/204 is on stable storage
before the answer goes out; it survives a crash of any process, of the operating
system, and a pulled plug (as far as the disk honours a flush). SQLite runs
``synchronous=FULL`` (in WAL mode every commit syncs the WAL), PostgreSQL
``synchronous_commit=on`` (the commit waits for its WAL flush).

``"process"``: a reading survives a crash of Fieldstation's own processes, not of
the machine. SQLite ``synchronous=NORMAL`` (WAL synced only at checkpoints: an OS
crash or power cut may lose the last commits, the database stays consistent);
PostgreSQL ``synchronous_commit=off`` (the server flushes its WAL within three
``wal_writer_delay``\\ s: a crash of PostgreSQL itself, or of the machine, may lose
that much, never consistency).

Both engines already share one sync among commits that arrive together
(PostgreSQL's group commit; SQLite writers take turns, and each commit is one
WAL append and one fsync), so the cost is one flush per commit, not per reading;
batches pay it once. The measured cost is in README, "Performance".

Pure: reads a mapping, imports no Flask.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fieldstation.config import ConfigError

POWER_LOSS = "power-loss"
PROCESS = "process"
SETTINGS = (POWER_LOSS, PROCESS)


def power_loss_safe(config: MutableMapping[str, Any]) -> bool:
    """True for ``DURABILITY = "power-loss"``, False for ``"process"``.

    :raise ConfigError: any other value.
    """
    value = str(config.get("DURABILITY", POWER_LOSS)).strip().lower()
    if value not in SETTINGS:
        raise ConfigError(f"DURABILITY must be one of {', '.join(SETTINGS)}, not {value!r}")
    return value == POWER_LOSS


def postgres_options(config: MutableMapping[str, Any], durable: bool) -> None:
    """Set ``synchronous_commit`` in the PostgreSQL connections' start-up options.

    Given at connection start-up (libpq's ``options``), it costs no round trip and
    holds for every statement of the connection, whichever way it is used: the
    session's, the pooled DBAPI connections, the autocommit reads. It overrides
    the server's own default (the benches run a server with it off).
    """
    options = dict(config.get("SQLALCHEMY_ENGINE_OPTIONS") or {})
    connect_args = dict(options.get("connect_args") or {})
    setting = f"-c synchronous_commit={'on' if durable else 'off'}"
    connect_args["options"] = f"{connect_args.get('options', '')} {setting}".strip()
    options["connect_args"] = connect_args
    config["SQLALCHEMY_ENGINE_OPTIONS"] = options
