"""The dashboard in a real headless Chromium (Debian's), driven by Playwright, against a real server
on SQLite and on PostgreSQL.

The app runs in a threaded Werkzeug server on a free loopback port; readings
arrive through ``/update`` as a device sends them. Screenshots of every page at
1280×800 and 390×844 go to ``test-artifacts/screenshots`` (git-ignored) for a
person to look at.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shlex
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from werkzeug.serving import make_server

from fieldstation import manage
from fieldstation.extensions import db
from tests.conftest import make_app, migrated_url, truncate_all, unavailable
from tests.factories import PASSWORD

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


class LiveServer:
    """The app served over real HTTP on 127.0.0.1."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)


@pytest.fixture
def server(
    engine_name: str, request: pytest.FixtureRequest, database_urls: dict[str, Any], tmp_path: Path
) -> Iterator[LiveServer]:
    """A migrated database (each engine) behind a real server, with production's CSRF and cookie settings.

    The session cookie stays ``Secure``: Chromium keeps Secure cookies from
    http://127.0.0.1 (loopback counts as a secure origin), as for ``make run``.
    """
    url = migrated_url(engine_name, request, database_urls)
    app = make_app(url, tmp_path / "instance", WTF_CSRF_ENABLED=True)
    with app.app_context():
        manage.create_user("alice", PASSWORD, is_admin=True)
        db.session.remove()
    with LiveServer(app) as live:
        yield live
    with app.app_context():
        truncate_all()
        db.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium under Playwright (Playwright's own browser download cannot work here)."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        unavailable("Playwright for Python is not installed (pip install -e '.[dev]')")
    if not os.path.exists(CHROMIUM):
        unavailable(f"{CHROMIUM} is not installed (apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def shoot(page: Any, name: str) -> None:
    """Save a full-page screenshot for a person to check (the last engine's run wins)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def update(base: str, key: str, **fields: object) -> str:
    """POST /update as a ThingSpeak device does (form body: api_key=KEY&field1=…)."""
    response = requests.post(f"{base}/update", data={"api_key": key, **fields}, timeout=10)
    assert response.status_code == 200, response.text
    assert response.text != "0"
    return response.text


def chart_desc(page: Any, slot: str) -> str:
    return str(page.locator(f"#{slot} svg desc").text_content())


def test_sign_in_create_post_watch_live_switch_ranges(
    server: LiveServer, browser: Any, record_property: Any
) -> None:
    record_property("screenshots", str(SCREENSHOTS))
    context = browser.new_context(viewport=DESKTOP, timezone_id="Europe/Berlin")
    page = context.new_page()
    page.set_default_timeout(15_000)
    base = server.url

    # Sign in: the front door leads to the sign-in page.
    page.goto(base + "/")
    assert page.url.startswith(base + "/dashboard/login")
    shoot(page, "01-sign-in-desktop")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/dashboard/channels")
    shoot(page, "02-my-channels-empty-desktop")

    # Create a channel with two fields, as the seed's energy monitor has.
    page.click("text=New channel")
    page.fill("input[name=name]", "garage")
    page.fill("input[name='fields-0-name']", "power")
    page.fill("input[name='fields-0-unit']", "W")
    page.fill("input[name='fields-1-name']", "temperature")
    page.fill("input[name='fields-1-unit']", "°C")
    page.fill("textarea[name=description]", "Energy monitor in the garage")
    shoot(page, "03-new-channel-desktop")
    page.click("button:has-text('Create channel')")
    page.wait_for_url("**/keys")

    # A write key, shown once with copy-paste examples.
    page.click("button:has-text('Create key')")
    key = page.locator("#new-key").text_content()
    assert key and len(key) == 16
    assert f"api_key={key}" in page.content()
    shoot(page, "04-new-key-desktop")
    channel_path = page.locator("a:has-text('Open the channel')").get_attribute("href")
    assert channel_path

    # Readings through /update over the last hour, then the channel page.
    now = dt.datetime.now(dt.UTC)
    for minutes in range(50, 0, -5):
        at = (now - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%SZ")
        update(base, key, field1=1000 + 20 * minutes, field2=round(15 + (minutes % 20) / 4, 2), created_at=at)
    page.goto(base + channel_path + "?range=1h")
    assert "power: 10 readings" in chart_desc(page, "f1")
    assert page.locator("#zone-name").text_content() == "Europe/Berlin"
    shoot(page, "05-channel-1h-desktop")

    # A new reading appears without a reload: the marker set on this document survives.
    page.evaluate("window.__sameDocument = true")
    update(base, key, field1=1234.5, field2=19.25)
    page.wait_for_function("document.querySelector('#latest').textContent.includes('1234.5')")
    page.wait_for_function("document.querySelector('#f1 svg desc').textContent.includes('11 readings')")
    assert page.evaluate("window.__sameDocument") is True
    assert "19.25" in str(page.locator("#latest").text_content())

    # Hover read-out on the chart.
    box = page.locator("#f1 svg").bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    assert page.locator("#tooltip").is_visible()
    assert "power" in str(page.locator("#tooltip").text_content())

    # Switch ranges without a reload.
    before = chart_desc(page, "f1")
    page.click("nav.ranges a[data-range='7d']")
    page.wait_for_url("**range=7d**")
    page.wait_for_function(
        "before => document.querySelector('#f1 svg desc').textContent !== before", arg=before
    )
    assert page.evaluate("window.__sameDocument") is True
    assert page.locator("nav.ranges a.active").text_content() == "7d"
    assert "power: 11 readings" in chart_desc(page, "f1")
    shoot(page, "06-channel-7d-desktop")
    page.click("nav.ranges a[data-range='1y']")
    page.wait_for_url("**range=1y**")
    page.wait_for_function("document.querySelector('nav.ranges a.active').textContent === '1y'")

    # The other pages, for a person to look at.
    channel_id = channel_path.rstrip("/").split("/")[-1]
    for name, path in [
        ("07-my-channels", "/dashboard/channels"),
        ("08-edit-channel", f"/dashboard/channels/{channel_id}/edit"),
        ("09-keys", f"/dashboard/channels/{channel_id}/keys"),
        ("10-import", f"/dashboard/channels/{channel_id}/import"),
        ("11-delete", f"/dashboard/channels/{channel_id}/delete"),
        ("12-users", "/dashboard/users"),
        ("13-embed", f"/channels/{channel_id}/charts/1?range=1h&width=450&height=260"),
    ]:
        page.goto(base + path)
        shoot(page, f"{name}-desktop")

    # Phone width: the same pages, readable at 390 px.
    phone = browser.new_context(
        viewport=PHONE, timezone_id="Europe/Berlin", storage_state=context.storage_state()
    )
    small = phone.new_page()
    small.set_default_timeout(15_000)
    for name, path in [
        ("05-channel-1h", f"{channel_path}?range=1h"),
        ("06-channel-7d", f"{channel_path}?range=7d"),
        ("07-my-channels", "/dashboard/channels"),
        ("08-edit-channel", f"/dashboard/channels/{channel_id}/edit"),
        ("09-keys", f"/dashboard/channels/{channel_id}/keys"),
        ("12-users", "/dashboard/users"),
    ]:
        small.goto(base + path)
        small.wait_for_load_state("networkidle")
        if name.startswith("05"):
            # Redrawn for the phone's width (not shrunk), so the labels keep their size.
            small.wait_for_function("Number(document.querySelector('#f1 svg').getAttribute('width')) < 500")
        shoot(small, f"{name}-phone")
    phone.close()

    # Signed out, the private channel does not exist; made public, it opens.
    stranger = browser.new_context(viewport=DESKTOP)
    visitor = stranger.new_page()
    response = visitor.goto(base + channel_path)
    assert response is not None and response.status == 404
    assert "garage" not in visitor.content()
    assert visitor.goto(f"{base}/channels/{channel_id}/charts/1").status == 404
    page.goto(f"{base}/dashboard/channels/{channel_id}/edit")
    page.check("input[name=public]")
    page.click("button:has-text('Save')")
    page.wait_for_url(f"**{channel_path}")
    response = visitor.goto(base + channel_path + "?range=1h")
    assert response is not None and response.status == 200
    assert "power: 11 readings" in chart_desc(visitor, "f1")
    shoot(visitor, "14-public-signed-out-desktop")
    stranger.close()

    # Sign out.
    page.click("button:has-text('Sign out')")
    page.wait_for_url("**/dashboard/login")
    context.close()


def test_pages_work_without_javascript_and_the_examples_work_as_pasted(
    server: LiveServer, browser: Any
) -> None:
    if not shutil.which("curl"):
        unavailable("curl is not installed")
    context = browser.new_context(viewport=DESKTOP, java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(15_000)
    base = server.url
    page.goto(base + "/dashboard/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/dashboard/channels")
    page.click("text=New channel")
    page.fill("input[name=name]", "plain")
    page.fill("input[name='fields-0-name']", "level")
    page.click("button:has-text('Create channel')")
    page.wait_for_url("**/keys")
    page.click("button:has-text('Create key')")
    # The copy-paste examples, run as a person would paste them into a shell.
    commands = [
        str(text).strip().splitlines()[0]
        for text in page.locator("div.copyline pre").all_text_contents()
        if str(text).startswith("curl")
    ]
    assert len(commands) == 3  # ThingSpeak form, the seed's path URL, line protocol
    for command in commands:
        done = subprocess.run(shlex.split(command), capture_output=True, text=True, timeout=30, check=False)
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.strip() not in ("", "0") or "204" in done.stdout, (command, done.stdout)
    page.click("a:has-text('Open the channel')")
    # The form, the path URL and line protocol (the channel's name as measurement) all wrote field 1.
    assert "level: 3 readings" in chart_desc(page, "f1")
    assert "plain level" not in page.content() and "weather temperature" not in page.content()
    page.click("nav.ranges a[data-range='30d']")  # a plain link without the script
    page.wait_for_url("**range=30d**")
    assert page.locator("nav.ranges a.active").text_content() == "30d"
    page.fill("input[name=start]", "2020-01-01T00:00")
    page.fill("input[name=end]", "2020-01-02T00:00")
    page.click("nav.ranges button:has-text('Show')")
    page.wait_for_url("**start=2020-01-01**")
    assert "No data in this range" in page.content()
    context.close()


@pytest.mark.parametrize("engine_name", ["sqlite"])
def test_sign_in_page_says_when_the_session_cookie_cannot_stick(server: LiveServer, browser: Any) -> None:
    """Served over plain HTTP under a LAN name (a Raspberry Pi), the Secure cookie would be dropped.

    Chromium maps the name to 127.0.0.1, so the origin is http://fieldstation.test, which is not
    a secure context: the page must say why signing in will fail and what to do. On loopback
    (``make run``) the cookie sticks and the page says nothing.
    """
    port = server.server.server_port
    args = [*CHROMIUM_ARGS, "--host-resolver-rules=MAP fieldstation.test 127.0.0.1"]
    lan = browser.browser_type.launch(executable_path=CHROMIUM, args=args)  # a second Chromium
    try:
        page = lan.new_page()
        page.goto(f"http://fieldstation.test:{port}/dashboard/login")
        notice = page.locator("#insecure-notice")
        notice.wait_for(state="visible")
        assert "FIELDSTATION_SESSION_COOKIE_SECURE=false" in str(notice.text_content())
        # Signing in anyway fails (no session, so no CSRF token to match): the page says why, not "CSRF".
        page.fill("input[name=username]", "alice")
        page.fill("input[name=password]", PASSWORD)
        page.click("button:has-text('Sign in')")
        page.locator("text=You were not signed in").wait_for()
        assert "CSRF" not in page.content() and "forged" not in page.content()
        page.locator("#insecure-notice").wait_for(state="visible")
        page.goto(f"{server.url}/dashboard/login")
        page.wait_for_load_state("load")
        assert page.locator("#insecure-notice").is_hidden()
    finally:
        lan.close()


def sign_in_as_alice(page: Any, base: str) -> None:
    page.goto(base + "/dashboard/login")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button:has-text('Sign in')")
    page.wait_for_url("**/dashboard/channels")


#: Each example box against its card: how wide its text is, how wide the box shows it, and the
#: right edges of the box and the card; then whether the page itself scrolls sideways.
EXAMPLE_BOXES = """() => ({
  boxes: [...document.querySelectorAll('.copyline pre')].map(pre => ({
    id: pre.id, text: pre.scrollWidth, shown: pre.clientWidth,
    right: pre.getBoundingClientRect().right, card: pre.closest('.card').getBoundingClientRect().right,
  })),
  page: document.documentElement.scrollWidth - document.documentElement.clientWidth,
})"""


@pytest.mark.parametrize("engine_name", ["sqlite"])
@pytest.mark.parametrize("width", [360, 1280])
def test_key_examples_fit_their_boxes(server: LiveServer, browser: Any, width: int) -> None:
    """The new key's examples, the line protocol's long command first, are read whole inside their
    boxes at a phone's and a desktop's width: none runs past its box, its card or the page."""
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    sign_in_as_alice(page, server.url)
    page.click("text=New channel")
    page.fill("input[name=name]", "weather station in the garden shed")  # the measurement, escaped
    page.fill("input[name='fields-0-name']", "temperature")
    page.click("button:has-text('Create channel')")
    page.wait_for_url("**/keys")
    page.click("button:has-text('Create key')")
    line_protocol = page.locator("h3:has-text('Line protocol') + .copyline pre")
    measurement = "weather\\ station\\ in\\ the\\ garden\\ shed"
    assert f"{measurement} temperature=21.5" in str(line_protocol.text_content())
    shoot(page, f"15-new-key-{width}px")
    found = page.evaluate(EXAMPLE_BOXES)
    assert len(found["boxes"]) == 5
    for box in found["boxes"]:
        assert box["text"] <= box["shown"], box  # wrapped inside the box: nothing hidden past its edge
        assert box["right"] <= box["card"], box
    assert found["page"] <= 0
    context.close()


def test_hover_read_out_gives_the_bucket_median(server: LiveServer, browser: Any) -> None:
    """A skewed bucket (nine readings of 1, one of 100) in the embedded chart: avg 10.9, median 1."""
    from fieldstation import store
    from fieldstation.points import Batch, Entry
    from tests.factories import make_channel, make_user

    hour = dt.datetime(2026, 6, 1, 12, tzinfo=dt.UTC)
    with server.app.app_context():
        keys = make_channel(make_user("bob").user)
        at = [int((hour + dt.timedelta(minutes=i)).timestamp() * 1_000_000) for i in range(10)]
        store.write(Batch(keys.id, [Entry({1: 100.0 if i == 9 else 1.0}, ts=ts) for i, ts in enumerate(at)]))
        channel_id, read_key = keys.id, keys.read_key
        db.session.remove()
    context = browser.new_context(viewport=DESKTOP)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(
        f"{server.url}/channels/{channel_id}/charts/1?api_key={read_key}&tz=UTC"
        "&start=2026-05-17T00:00:00Z&end=2026-06-16T00:00:00Z"  # 30 days: the hour is one bucket
    )
    box = page.locator("svg.chart").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    tip = page.locator("#tooltip")
    tip.wait_for(state="visible")
    text = str(tip.text_content())
    assert "avg 10.9" in text and "(1 – 100)" in text
    assert re.search(r"median 1(?![\d.])", text), text
    context.close()
