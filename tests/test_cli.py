"""The fieldstation command: every command through Flask's CLI runner."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time

from flask.testing import FlaskCliRunner

from fieldstation import manage
from fieldstation.auth import find_key
from fieldstation.instance import MIGRATIONS
from fieldstation.schema import HEAD
from tests.pgserver import free_port


def invoke(runner: FlaskCliRunner, *args: str, input: str | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(args=list(args), input=input)


def test_init_creates_admin_once(runner: FlaskCliRunner) -> None:
    result = invoke(runner, "init")
    assert result.exit_code == 0, result.output
    password = re.search(r"one-time password .*: (\S+)$", result.output, re.M)
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
    # Revisions are named by their place in the chain: the last file is the head.
    *_, before, head = sorted(p.stem for p in (MIGRATIONS / "versions").glob("0*.py"))
    for args, expected in (
        (["db", "current"], f"{head} (head)"),
        (["db", "history"], f"{before} -> {head} (head)"),
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
    # one line about the schema, not Alembic's line per migration above the password
    assert "new database set up" in result.stdout and "alembic" not in result.stderr, result.stderr
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


# -- the command's own shape (issue 21) ------------------------------------------------------


def _shell(args: list[str], env_extra: dict[str, str], tmp_path) -> subprocess.CompletedProcess[str]:  # type: ignore[no-untyped-def]
    """The installed ``fieldstation`` script, as a user runs it."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSTATION_")}
    env |= {"FIELDSTATION_INSTANCE_PATH": str(tmp_path / "instance"), **env_extra}
    script = os.path.join(os.path.dirname(sys.executable), "fieldstation")
    return subprocess.run([script, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_top_level_holds_only_fieldstations_commands(tmp_path) -> None:  # type: ignore[no-untyped-def]
    top = _shell(["--help"], {}, tmp_path)
    assert top.returncode == 0, top.stderr
    for flask_only in ("--env-file", "--app", "--debug", "routes", "shell", " run "):
        assert flask_only not in top.stdout, flask_only
    for ours in ("init", "serve", "db", "user", "channel", "key", "dev"):
        assert re.search(rf"^  {ours}\b", top.stdout, re.M), ours
    db_help = _shell(["db", "--help"], {}, tmp_path).stdout
    listed = re.findall(r"^  (\w+)", db_help.split("Commands:")[1], re.M)
    assert sorted(listed) == ["current", "downgrade", "history", "upgrade"]
    dev_db = _shell(["dev", "db", "--help"], {}, tmp_path).stdout
    assert "revision" in dev_db and "migrate" in dev_db
    version = _shell(["--version"], {}, tmp_path)
    assert version.returncode == 0 and re.fullmatch(
        r"fieldstation, version \d+\.\d+\.\d+\S*\n", version.stdout
    )


def test_serve_before_init_leaves_no_database_behind(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A new user's first `serve` (no `init` yet) refuses, and does not create the SQLite file:
    it used to leave an empty one with the umask's mode, which `init` then kept world-readable."""
    instance = tmp_path / "instance"
    env = {"FIELDSTATION_INSTANCE_PATH": str(instance), "FIELDSTATION_ADMIN_PASSWORD": "long-enough-pw"}
    served = _shell(["serve", "--port", str(free_port())], env, tmp_path)
    assert served.returncode == 1 and "not initialised: run `fieldstation init`" in served.stderr
    assert not (instance / "fieldstation.db").exists()
    assert _shell(["init"], env, tmp_path).returncode == 0
    assert (instance / "fieldstation.db").stat().st_mode & 0o777 == 0o600


def test_uninitialised_and_unreachable_databases_are_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    unused_port = free_port()
    fresh = {
        "FIELDSTATION_DATABASE_URL": f"sqlite:///{tmp_path / 'empty.db'}",
        "FIELDSTATION_SECRET_KEY": "k" * 32,
    }
    unreachable = {
        "FIELDSTATION_DATABASE_URL": f"postgresql://someone:hunter2@127.0.0.1:{unused_port}/none",
        "FIELDSTATION_SECRET_KEY": "k" * 32,
    }
    for env, args, expected in (
        (fresh, ["channel", "list"], "not initialised: run `fieldstation init`"),
        (fresh, ["user", "create", "x", "--password", "long-enough-pw"], "not initialised"),
        (fresh, ["serve", "--port", str(unused_port)], "not initialised: run `fieldstation init`"),
        (unreachable, ["channel", "list"], "cannot use database"),
        (unreachable, ["init"], "cannot use database"),
        (unreachable, ["serve"], "cannot use database"),
    ):
        result = _shell(args, env, tmp_path)
        assert result.returncode == 1, (args, result.stdout, result.stderr)
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("Error: ") and expected in lines[0], (args, lines)
        assert "hunter2" not in result.stderr


def test_serve_refuses_a_database_behind_the_code(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    unused_port = free_port()
    from flask_migrate import downgrade, upgrade

    if app.config["DATABASE_URL"].startswith("postgresql"):
        return  # one engine is enough: the check reads alembic_version the same way on both
    downgrade(revision="-1")
    try:
        env = {"FIELDSTATION_DATABASE_URL": app.config["DATABASE_URL"], "FIELDSTATION_SECRET_KEY": "k" * 32}
        result = _shell(["serve", "--port", str(unused_port)], env, tmp_path)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1 and "run `fieldstation db upgrade`" in result.stderr
    finally:
        upgrade()


def test_serve_announces_only_once_it_answers_and_a_busy_port_is_one_line(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import socket
    import urllib.request

    if app.config["DATABASE_URL"].startswith("postgresql"):
        return  # the launcher does not depend on the engine
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSTATION_")}
    env |= {
        "FIELDSTATION_INSTANCE_PATH": str(tmp_path / "instance"),
        "FIELDSTATION_DATABASE_URL": app.config["DATABASE_URL"],
        "FIELDSTATION_SECRET_KEY": "k" * 32,
    }
    script = os.path.join(os.path.dirname(sys.executable), "fieldstation")
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        result = subprocess.run(
            [script, "serve", "--port", str(busy), "--server", "gunicorn"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 1
        assert (
            result.stderr
            == f"Error: port {busy} on 127.0.0.1 is in use: stop the other server or pick --port\n"
        )
    port = busy  # free again
    server = subprocess.Popen(
        [script, "serve", "--port", str(port), "--server", "gunicorn", "--workers", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert first.startswith(f"Fieldstation is answering on http://127.0.0.1:{port}/ (gunicorn")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=5) as answer:
            assert answer.status == 204
    finally:
        server.terminate()  # at once: a SIGTERM right after the announcement once orphaned the server
        out, err = server.communicate(timeout=30)
    assert "Booting worker" not in out + err  # the banner is quiet
    deadline = time.monotonic() + 10
    while _answers(port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _answers(port), "the server outlived the serve command it was stopped through"


def _answers(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def test_channel_show_counts_and_create_sets_units(runner: FlaskCliRunner, client) -> None:  # type: ignore[no-untyped-def]
    invoke(runner, "user", "create", "carol", "--password", "long-enough-pw")
    created = invoke(
        runner, "channel", "create", "garden", "--owner", "carol", "--field", "soil:%", "--field", "air"
    )
    assert created.exit_code == 0, created.output
    write_key = re.search(r"write key \(shown only now\): (\w+)", created.output)
    assert write_key is not None
    for at, soil in (("2026-01-01T00:00:00Z", 1), ("2026-01-02T00:00:00Z", 2), ("2026-01-03T00:00:00Z", 3)):
        answer = client.post(
            "/update", data={"api_key": write_key.group(1), "field1": soil, "field2": 5, "created_at": at}
        )
        assert answer.status_code == 200 and answer.get_data(as_text=True) != "0"
    shown = invoke(runner, "channel", "show", "garden").output
    assert "entries: 3, readings: 6, last entry id: 3" in shown
    assert "field1: soil [%]" in shown and "field2: air\n" in shown
    assert invoke(runner, "purge", "--older-than", "0").exit_code == 0
    assert "entries: 0, readings: 0, last entry id: 3" in invoke(runner, "channel", "show", "garden").output

    plain = invoke(runner, "channel", "create", "plain", "--owner", "carol")  # no --field: field1
    assert plain.exit_code == 0, plain.output
    assert "field1: field1" in invoke(runner, "channel", "show", "plain").output

    clash = invoke(
        runner, "channel", "create", "twice", "--owner", "carol", "--field", "a:x", "--field", "a:y"
    )
    assert clash.exit_code == 1 and "garden" in invoke(runner, "channel", "list").output
    assert "twice" not in invoke(runner, "channel", "list").output


def test_serve_init_prints_the_one_time_password_last(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """``make run``: migrate, first admin, server; the password is the last line, under the address."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSTATION_")}
    env |= {"FIELDSTATION_INSTANCE_PATH": str(tmp_path / "instance")}
    script = os.path.join(os.path.dirname(sys.executable), "fieldstation")
    port = free_port()
    server = subprocess.Popen(
        [script, "serve", "--init", "--port", str(port), "--server", "gunicorn", "--workers", "1"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        lines = [server.stdout.readline() for _ in range(4)]
    finally:
        server.terminate()
        out, err = server.communicate(timeout=30)
    assert lines[0] == f"new database set up (migrated to {HEAD}); instance folder: {tmp_path / 'instance'}\n"
    assert lines[1] == "created admin account 'admin'\n"
    assert lines[2].startswith(f"Fieldstation is answering on http://127.0.0.1:{port}/")
    password = re.fullmatch(r"one-time password of 'admin' .*: (\S+)\n", lines[3])
    assert password and out == ""
    assert "Booting worker" not in err and "alembic" not in err, err


def test_serve_init_on_a_busy_port_still_prints_the_one_time_password(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The admin is made before the server starts; its password must not be lost with the start."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSTATION_")}
    env |= {"FIELDSTATION_INSTANCE_PATH": str(tmp_path / "instance")}
    script = os.path.join(os.path.dirname(sys.executable), "fieldstation")
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = subprocess.run(
            [script, "serve", "--init", "--port", str(port), "--server", "gunicorn"],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert result.returncode == 1 and f"port {port} on 127.0.0.1 is in use" in result.stderr
    password = re.search(r"one-time password of 'admin' .*: (\S+)$", result.stdout, re.M)
    assert password, result.stdout


def test_the_servers_database_check_knows_the_newest_migration() -> None:
    """schema.HEAD (checked without Alembic, for a quick start) is the migrations' head."""
    from fieldstation.schema import head_revisions

    assert head_revisions() == {HEAD}


def test_serve_loads_without_the_other_commands_or_the_app() -> None:
    """Everything `serve` imports comes before the server's first answer: not the CLI's other
    commands, the models, Alembic or pydantic (bench/coldstart.py measures what that saves)."""
    code = (
        "import sys\n"
        "from fieldstation.__main__ import main\n"
        "main(['serve', '--help'], standalone_mode=False)\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    loaded = set(done.stdout.split())
    assert "fieldstation.launch" in loaded
    for heavy in ("fieldstation.cli", "fieldstation.models", "fieldstation.manage", "alembic", "pydantic"):
        assert heavy not in loaded, heavy
