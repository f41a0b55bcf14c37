"""Backups finish under any write rate, never leave a partial file at the target, and
``fieldstation restore`` refuses what is not a whole Fieldstation backup (issue 17, item 4)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from fieldstation import store
from fieldstation.extensions import db
from fieldstation.points import Batch, Entry
from tests import readback
from tests.conftest import TEST_SECRET, make_app
from tests.factories import make_channel, make_user

T0 = 1_700_000_000_000_000
SCRIPT = os.path.join(os.path.dirname(sys.executable), "fieldstation")


def _env(app: Flask, url: str | None = None) -> dict[str, str]:
    return {
        **os.environ,
        "FIELDSTATION_ENV": "production",
        "FIELDSTATION_SECRET_KEY": TEST_SECRET,
        "FIELDSTATION_DATABASE_URL": url or app.config["DATABASE_URL"],
        "FIELDSTATION_INSTANCE_PATH": app.instance_path,
    }


def _fill(channel_id: int, readings: int, start: int = 0) -> None:
    for first in range(start, start + readings, 5000):
        entries = [
            Entry({1: float(i), 2: float(-i)}, ts=T0 + i * 1_000_000) for i in range(first, first + 5000)
        ]
        store.write(Batch(channel_id, entries))


@pytest.mark.parametrize("engine_name", ["sqlite"])
def test_backup_finishes_while_writers_commit_at_full_speed(app: Flask, tmp_path: Path) -> None:
    """Every commit restarted the paged copy, so under steady writes it never ended."""
    channel_id = make_channel(make_user().user).id
    _fill(channel_id, 200_000)  # ~18 MiB on SQLite
    acknowledged: list[int] = []
    stop = threading.Event()

    # Commits as fast as they come: without waiting for the disk (the backup's own durability is
    # what is tested here, not the writer's).
    fast = make_app(app.config["DATABASE_URL"], Path(app.instance_path), DURABILITY="process")

    def write() -> None:
        with fast.app_context():
            i = 10**6
            while not stop.is_set():
                store.write(Batch(channel_id, [Entry({1: float(i)}, ts=T0 + i * 1_000_000)]))
                acknowledged.append(i)  # store.write returned: committed
                i += 1

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        time.sleep(0.5)
        before = set(acknowledged)
        target = tmp_path / "busy.backup"
        result = subprocess.run(
            [SCRIPT, "backup", str(target)], env=_env(app), capture_output=True, text=True, timeout=120
        )
        during = len(acknowledged) - len(before)
    finally:
        stop.set()
        writer.join(10)
        with fast.app_context():
            db.engine.dispose()
    assert result.returncode == 0, result.stderr
    assert during > 0 and before, "the writer did not write while the backup ran"

    restored = tmp_path / "restored.db"
    again = subprocess.run(
        [SCRIPT, "restore", "--yes", str(target)],
        env=_env(app, f"sqlite:///{restored}"),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    with sqlite3.connect(restored) as conn:
        field = conn.execute(
            "SELECT id FROM fields WHERE channel_id = ? AND number = 1", (channel_id,)
        ).fetchone()[0]
        stored = {
            round((ts - T0) / 1_000_000)
            for (ts,) in conn.execute(
                "SELECT ts FROM readings WHERE field_id = ? AND ts >= ?", (field, T0 + 10**12)
            )
        }
    assert before <= stored


def test_a_killed_backup_leaves_no_file_at_the_target(app: Flask, tmp_path: Path) -> None:
    _fill(make_channel(make_user().user).id, 60_000)
    db.session.remove()
    target = tmp_path / "killed.backup"
    for _attempt in range(5):  # a backup may finish before it is caught half-way; then try again
        proc = subprocess.Popen(
            [SCRIPT, "backup", str(target)],
            env=_env(app),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its pg_dump too
        )
        while proc.poll() is None and not (
            target.exists() or list(tmp_path.glob(".killed.backup.partial-*"))
        ):
            time.sleep(0.001)
        caught = proc.poll() is None
        if caught:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if caught:
            time.sleep(0.5)
            assert not target.exists()
            return
        target.unlink()
    pytest.fail("the backup finished each time before it could be killed")


def test_restore_refuses_cut_and_foreign_files_and_restores_a_good_one(
    app: Flask, runner: FlaskCliRunner, tmp_path: Path
) -> None:
    channel_id = make_channel(make_user().user).id
    _fill(channel_id, 10_000)
    good = tmp_path / "good.backup"
    assert runner.invoke(args=["backup", str(good)]).exit_code == 0
    _fill(channel_id, 5_000, start=10_000)  # written after the backup: the restore takes it away
    assert readback.count_readings() == 30_000

    cut = tmp_path / "cut.backup"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    noise = tmp_path / "noise.backup"
    noise.write_bytes(os.urandom(100_000))
    for bad in (cut, foreign, noise, tmp_path / "missing.backup"):
        refused = runner.invoke(args=["restore", "--yes", str(bad)])
        assert refused.exit_code == 1, (bad.name, refused.output)
        assert "Error:" in refused.output and "Traceback" not in refused.output
        assert readback.count_readings() == 30_000, bad.name  # nothing was replaced

    restored = runner.invoke(args=["restore", "--yes", str(good)])
    assert restored.exit_code == 0, restored.output
    db.session.remove()
    assert readback.count_readings() == 20_000


def test_backup_and_restore_report_progress(
    app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Long ones say how far they are (here every step: the interval is set to nothing)."""
    from fieldstation import backup as backups

    monkeypatch.setattr(backups, "PROGRESS_EVERY_S", 0.0)
    _fill(make_channel(make_user().user).id, 20_000)
    db.session.remove()
    lines: list[str] = []
    target = backups.backup(app.config["DATABASE_URL"], tmp_path / "progress.backup", progress=lines.append)
    assert lines and target.exists()
    said = len(lines)
    db.engine.dispose()
    backups.restore(app.config["DATABASE_URL"], target, progress=lines.append)
    assert len(lines) > said
    assert readback.count_readings() == 40_000
