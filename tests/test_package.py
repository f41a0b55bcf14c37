"""Fieldstation as an installed package: a wheel, a fresh venv with no extras, run from another folder.

This is how pipx, a package index or a Raspberry Pi without a compiler installs it: nothing
from the checkout is there, so the migrations must travel inside the package, and without the
uWSGI extra ``serve`` must fall back to gunicorn.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.pgserver import free_port

ROOT = Path(__file__).resolve().parents[1]


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=600, check=False, **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.mark.slow
def test_wheel_in_a_fresh_venv_inits_and_serves_from_another_folder(tmp_path: Path) -> None:
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(tmp_path / "dist"), str(ROOT)]
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("fieldstation-*.whl")

    venv = tmp_path / "venv"
    # Nothing of the checkout may reach the venv: with the checkout's src on PYTHONPATH (as a
    # developer runs the tests) pip took its egg-info for an installed fieldstation, installed no
    # `fieldstation` command, and the commands would have run the checkout's code, not the wheel's.
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("FIELDSTATION_", "VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME"))
    }
    env |= {"HOME": str(tmp_path / "home"), "PATH": f"{venv / 'bin'}:/usr/bin:/bin"}
    env.pop("XDG_DATA_HOME", None)
    assert _run([sys.executable, "-m", "venv", str(venv)], env=env).returncode == 0
    installed = _run([str(venv / "bin" / "pip"), "install", "-q", str(wheel)], env=env)
    assert installed.returncode == 0, installed.stderr
    probe = _run(
        [str(venv / "bin" / "python"), "-c", "import importlib.util as u; print(u.find_spec('pyuwsgi'))"],
        env=env,
    )
    assert probe.stdout.strip() == "None", "the wheel without extras must not pull in uWSGI"
    where = _run(
        [str(venv / "bin" / "python"), "-c", "import fieldstation; print(fieldstation.__file__)"], env=env
    )
    assert where.stdout.startswith(str(venv)), where.stdout  # the wheel's code, not the checkout's

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = str(venv / "bin" / "fieldstation")

    init = _run([script, "init"], cwd=elsewhere, env=env)
    assert init.returncode == 0, init.stderr
    password = re.search(r"one-time password .*: (\S+)$", init.stdout, re.M)
    assert password, init.stdout
    instance = tmp_path / "home" / ".local" / "share" / "fieldstation"
    assert (instance / "fieldstation.db").is_file() and (instance / "config.py").is_file()

    port = free_port()
    server = subprocess.Popen(
        [script, "serve", "--port", str(port), "--workers", "1"],
        cwd=elsewhere, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        status = _first_answer(f"http://127.0.0.1:{port}/dashboard/login", server)
        assert status == 200
    finally:
        server.terminate()
        output, _ = server.communicate(timeout=20)
    assert "gunicorn" in output and "uwsgi" not in output.lower()


def _first_answer(url: str, server: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert server.poll() is None, server.stdout.read() if server.stdout else ""
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"no answer from {url}")
