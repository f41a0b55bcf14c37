"""Purging old records and taking backups."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner

from fieldstation import manage, rollups, store
from fieldstation.points import Batch, Entry
from fieldstation.retention import purge
from fieldstation.timeunits import DAY as DAY_US
from tests.factories import make_channel, make_user
from tests.test_store import entries, readings

NOW = 1_800_000_000_000_000


def test_purge_by_channel_retention(app: Flask) -> None:
    owner = make_user().user
    kept = make_channel(owner, "forever")
    short = make_channel(owner, "short")
    manage.update_channel(short.channel, retention_days=7)
    for ch in (kept, short):
        store.write(
            Batch(ch.id, [Entry({1: 1.0}, ts=NOW - 30 * DAY_US), Entry({1: 2.0, 2: 3.0}, ts=NOW - DAY_US)])
        )
    result = purge(now=NOW)
    assert (result.channels, result.readings, result.entries) == (1, 1, 1)
    assert [r[2] for r in readings(short.id)] == [2.0, 3.0]
    assert len(entries(short.id)) == 1
    assert len(readings(kept.id)) == 3  # no retention set: untouched


def test_purge_older_than_all_channels(app: Flask) -> None:
    ch = make_channel(make_user().user)
    store.write(Batch(ch.id, [Entry({1: 1.0}, ts=NOW - 3 * DAY_US), Entry({1: 2.0}, ts=NOW)]))
    assert purge(older_than_days=2, now=NOW).readings == 1
    assert [r[2] for r in readings(ch.id)] == [2.0]


def test_purge_keeps_rollups_true(app: Flask) -> None:
    ch = make_channel(make_user().user)
    field_id = ch.channel.fields[0].id
    hour = 3_600_000_000
    base = NOW // (24 * hour) * (24 * hour)
    store.write(Batch(ch.id, [Entry({1: float(i)}, ts=base + i * hour) for i in range(6)]))
    day = rollups.buckets(field_id, base, base + 24 * hour, 24 * hour)
    assert [(b.count, b.min, b.max) for b in day] == [(6, 0.0, 5.0)]
    purge(older_than_days=0, now=base + 2 * hour + 1)  # drops hours 0, 1, 2
    day = rollups.buckets(field_id, base, base + 24 * hour, 24 * hour)
    assert [(b.count, b.min, b.max) for b in day] == [(3, 3.0, 5.0)]


def test_purge_command(runner: FlaskCliRunner, app: Flask) -> None:
    ch = make_channel(make_user().user)
    store.write(Batch(ch.id, [Entry({1: 1.0}, ts=1_000_000)]))  # 1970
    result = runner.invoke(args=["purge", "--older-than", "30", "--channel", "weather"])
    assert result.exit_code == 0, result.output
    assert "purged 1 readings and 1 entries from 1 channels" in result.output
    assert readings(ch.id) == []


def test_backup_command(runner: FlaskCliRunner, app: Flask, tmp_path: Path) -> None:
    ch = make_channel(make_user().user)
    store.write(Batch(ch.id, [Entry({1: 21.5}, ts=NOW)]))
    target = tmp_path / "backup.db"
    result = runner.invoke(args=["backup", str(target)])
    assert result.exit_code == 0, result.output
    if app.config["DATABASE_URL"].startswith("sqlite"):
        with sqlite3.connect(target) as conn:
            assert conn.execute("SELECT value FROM readings").fetchall() == [(21.5,)]
    else:
        listing = subprocess.run(
            ["pg_restore", "--list", str(target)], capture_output=True, text=True, check=True
        )
        assert "TABLE DATA public readings" in listing.stdout
    again = runner.invoke(args=["backup", str(target)])
    assert again.exit_code == 1 and "exists" in again.output
