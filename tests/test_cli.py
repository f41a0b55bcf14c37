"""The fieldstation command: every command through Flask's CLI runner."""

from __future__ import annotations

import os
import re
import subprocess
import sys

from flask.testing import FlaskCliRunner

from fieldstation import manage
from fieldstation.auth import find_key


def invoke(runner: FlaskCliRunner, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(args=list(args), input=input)


def test_init_creates_admin_once(runner: FlaskCliRunner) -> None:
    result = invoke(runner, "init")
    assert result.exit_code == 0, result.output
    password = re.search(r"one-time password \(shown only now\): (\S+)", result.output)
    assert password and manage.authenticate("admin", password.group(1)) is not None
    again = invoke(runner, "init")
    assert again.exit_code == 0 and "admin account exists" in again.output


def test_init_takes_password_from_env(runner: FlaskCliRunner, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FIELDSTATION_ADMIN_PASSWORD", "s3cret-password")
    result = invoke(runner, "init")
    assert result.exit_code == 0 and "one-time" not in result.output
    assert manage.authenticate("admin", "s3cret-password") is not None


def test_user_channel_key_lifecycle(runner: FlaskCliRunner) -> None:
    result = invoke(runner, "user", "create", "carol", "--password", "long-enough-pw")
    assert result.exit_code == 0, result.output
    user_key = re.search(r"user key \(shown only now\): (\w+)", result.output)
    assert user_key and find_key(user_key.group(1)) is not None

    result = invoke(
        runner,
        "channel",
        "create",
        "garden",
        "--owner",
        "carol",
        "--field",
        "soil",
        "--field",
        "air",
    )
    assert result.exit_code == 0, result.output
    write_key = re.search(r"write key \(shown only now\): (\w+)", result.output)
    assert write_key is not None

    listed = invoke(runner, "channel", "list")
    assert "garden\tcarol\tprivate\t2 fields" in listed.output
    shown = invoke(runner, "channel", "show", "garden")
    assert "field1: soil" in shown.output and "field2: air" in shown.output

    result = invoke(runner, "key", "create", "garden", "--kind", "write", "--device", "aa:bb:cc:dd:ee:ff")
    assert result.exit_code == 0, result.output
    key_id = re.search(r"created write key (\d+)", result.output)
    assert key_id is not None
    keys = invoke(runner, "key", "list", "garden").output
    assert "aa:bb:cc:dd:ee:ff" in keys
    assert invoke(runner, "key", "revoke", key_id.group(1)).exit_code == 0
    assert "revoked" in invoke(runner, "key", "list", "garden").output

    assert invoke(runner, "user", "passwd", "carol", "--password", "another-password").exit_code == 0
    assert manage.authenticate("carol", "another-password") is not None
    assert "carol" in invoke(runner, "user", "list").output

    assert invoke(runner, "channel", "delete", "garden", "--yes").exit_code == 0
    assert "garden" not in invoke(runner, "channel", "list").output


def test_user_mistakes_are_one_line_errors(runner: FlaskCliRunner) -> None:
    for args in (
        ["channel", "create", "x", "--owner", "nobody"],
        ["channel", "show", "404"],
        ["key", "revoke", "999"],
        ["user", "create", "dave", "--password", "short"],
        ["user", "passwd", "nobody", "--password", "long-enough-pw"],
    ):
        result = invoke(runner, *args)
        assert result.exit_code != 0, args
        assert "Traceback" not in result.output
        assert result.output.strip().startswith("Error:"), result.output
    invoke(runner, "user", "create", "erin", "--password", "long-enough-pw")
    duplicate = invoke(runner, "user", "create", "erin", "--password", "long-enough-pw")
    assert duplicate.exit_code == 1 and "exists" in duplicate.output


def test_db_commands_in_a_real_shell(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The installed ``fieldstation`` script runs Flask-Migrate's db group against the configured URL."""
    env = {
        **os.environ,
        "FIELDSTATION_ENV": "development",
        "FIELDSTATION_DATABASE_URL": app.config["DATABASE_URL"],
        "FIELDSTATION_INSTANCE_PATH": str(tmp_path),
    }
    script = os.path.join(os.path.dirname(sys.executable), "fieldstation")
    for args, expected in (
        (["db", "current"], "0012_energy (head)"),
        (["db", "history"], "0006_compact_rollup_slots -> 0012_energy (head)"),
    ):
        result = subprocess.run(
            [script, *args], env=env, capture_output=True, text=True, timeout=60, check=False
        )
        assert result.returncode == 0, result.stderr
        assert expected in result.stdout


def test_first_init_on_a_fresh_machine_writes_the_instance_secret(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """README's deployment path without ``make run``: ``fieldstation init`` in production, no secret set."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSTATION_")}
    env |= {
        "FIELDSTATION_INSTANCE_PATH": str(tmp_path / "instance"),
        "FIELDSTATION_ADMIN_PASSWORD": "pw-long-enough",
    }
    script = os.path.join(os.path.dirname(sys.executable), "fieldstation")
    result = subprocess.run(
        [script, "init"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "created admin account 'admin'" in result.stdout
    config = tmp_path / "instance" / "config.py"
    assert re.search(r"SECRET_KEY = '[0-9a-f]{64}'", config.read_text())
    assert config.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "instance" / "fieldstation.db").exists()

    env["FIELDSTATION_ENV"] = "staging"
    result = subprocess.run(
        [script, "init"], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "FIELDSTATION_ENV must be one of" in result.stderr
