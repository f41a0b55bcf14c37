"""README's LAN step, followed: ``fieldstation serve --host 0.0.0.0``, a device and a browser elsewhere.

127.0.0.2 stands in for the host's LAN address (any 127/8 address reaches a server listening on
all addresses). Chromium gets a host name for it (``--host-resolver-rules``), so the page is not a
secure context, as ``http://192.168.1.20`` is not: without the README's setting the HTTPS-only
session cookie is dropped and the page explains it; with it, signing in works.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from tests.pgserver import free_port
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, browser  # noqa: F401  (browser: fixture)

SCRIPT = os.path.join(os.path.dirname(sys.executable), "fieldstation")
LAN = "127.0.0.2"


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIELDSTATION_")}
    return env | {"FIELDSTATION_INSTANCE_PATH": str(tmp_path / "instance"), **extra}


def _cli(tmp_path: Path, *args: str, **env: str) -> str:
    done = subprocess.run(
        [SCRIPT, *args], env=_env(tmp_path, **env), capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@contextmanager
def serving(tmp_path: Path, port: int, **env: str) -> Iterator[str]:
    """``fieldstation serve --host 0.0.0.0`` (gunicorn: one worker is enough); yields its first line."""
    server = subprocess.Popen(
        [SCRIPT, "serve", "--host", "0.0.0.0", "--port", str(port), "--server", "gunicorn", "--workers", "1"],
        env=_env(tmp_path, **env), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        yield server.stdout.readline()
    finally:
        server.terminate()
        server.communicate(timeout=30)


def test_readings_and_sign_in_from_the_lan(tmp_path: Path, browser: Any) -> None:  # noqa: F811
    _cli(tmp_path, "init", FIELDSTATION_ADMIN_PASSWORD="garden-admin-pw")
    _cli(tmp_path, "user", "create", "alice", FIELDSTATION_USER_PASSWORD="alice-garden-pw")
    made = _cli(tmp_path, "channel", "create", "shed", "--owner", "alice", "--field", "temperature:°C")
    write_key = re.search(r"write key \(shown only now\): (\w+)", made)
    channel_id = re.search(r"\(id (\d+)\)", made)
    assert write_key and channel_id
    port = free_port()
    lan_browser = browser.browser_type.launch(
        executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, f"--host-resolver-rules=MAP fieldstation.lan {LAN}"]
    )
    try:
        # Without the setting: the sign-in page says why it cannot work, and the attempt says it again.
        with serving(tmp_path, port) as first_line:
            assert first_line.startswith(f"Fieldstation is answering on http://127.0.0.1:{port}/")
            # A device on the LAN writes to the LAN address.
            at = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M:%SZ")
            reading = {"api_key": write_key.group(1), "field1": 21.5, "created_at": at}
            sent = requests.post(f"http://{LAN}:{port}/update", data=reading, timeout=10)
            assert sent.status_code == 200 and sent.text == "1"
            page = lan_browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"http://fieldstation.lan:{port}/dashboard/login")
            page.locator("#insecure-notice").wait_for(state="visible")
            _sign_in(page, "alice", "alice-garden-pw")
            page.locator("text=You were not signed in").wait_for()
            notice = str(page.locator("#insecure-notice").text_content())
            assert "FIELDSTATION_SESSION_COOKIE_SECURE=false" in notice
            assert "CSRF" not in page.content()
            page.close()

        # With the README's setting, the same browser signs in and sees the reading on a chart.
        with serving(tmp_path, port, FIELDSTATION_SESSION_COOKIE_SECURE="false"):
            page = lan_browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"http://fieldstation.lan:{port}/dashboard/login")
            assert page.locator("#insecure-notice").count() == 0
            _sign_in(page, "alice", "alice-garden-pw")
            page.wait_for_url("**/dashboard/channels")
            page.goto(f"http://fieldstation.lan:{port}/dashboard/channels/{channel_id.group(1)}?range=1h")
            desc = str(page.locator("#f1 svg desc").text_content())
            assert "temperature: 1 readings" in desc or "temperature: 1 reading" in desc, desc
    finally:
        lan_browser.close()


def _sign_in(page: Any, username: str, password: str) -> None:
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")


def test_serve_tells_devices_the_lan_address(tmp_path: Path) -> None:
    """On all addresses, serve names the address other machines use (the default route's source)."""
    from fieldstation.launch import lan_address

    _cli(tmp_path, "init", FIELDSTATION_ADMIN_PASSWORD="garden-admin-pw")
    port = free_port()
    server = subprocess.Popen(
        [SCRIPT, "serve", "--host", "0.0.0.0", "--port", str(port), "--server", "gunicorn", "--workers", "1"],
        env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        server.stdout.readline()
        second = server.stdout.readline() if lan_address() else ""
    finally:
        server.terminate()
        server.communicate(timeout=30)
    if lan_address():
        assert second == f"devices and other computers on your network: http://{lan_address()}:{port}/\n"
