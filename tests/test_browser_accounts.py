"""Accounts in a real Chromium: the one-time password, its forced change, and a disabled account.

The first admin comes from ``fieldstation init`` (the CLI's own output), as after ``make run``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fieldstation.extensions import db
from tests.conftest import make_app, migrated_url, truncate_all
from tests.test_browser import DESKTOP, LiveServer, browser, shoot  # noqa: F401  (browser: fixture)


@pytest.fixture
def fresh_server(
    engine_name: str, request: pytest.FixtureRequest, database_urls: dict[str, Any], tmp_path: Path
) -> Iterator[tuple[LiveServer, str]]:
    """A server on a migrated, empty database, and the one-time password ``init`` printed."""
    url = migrated_url(engine_name, request, database_urls)
    app = make_app(url, tmp_path / "instance", WTF_CSRF_ENABLED=True)
    with app.app_context():
        result = app.test_cli_runner().invoke(args=["init"])
        db.session.remove()
    assert result.exit_code == 0, result.output
    found = re.search(r"one-time password .*: (\S+)$", result.output, re.M)
    assert found, result.output
    with LiveServer(app) as live:
        yield live, found.group(1)
    with app.app_context():
        truncate_all()
        db.engine.dispose()


def sign_in(page: Any, base: str, username: str, password: str) -> None:
    page.goto(base + "/dashboard/login")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("button:has-text('Sign in')")


def test_one_time_password_forced_change_then_a_disabled_user_is_refused(
    fresh_server: tuple[LiveServer, str],
    browser: Any,  # noqa: F811
) -> None:
    server, one_time = fresh_server
    base = server.url
    admin = browser.new_context(viewport=DESKTOP)
    page = admin.new_page()
    page.set_default_timeout(15_000)

    # First sign-in with the one-time password: every page leads to the change form first.
    sign_in(page, base, "admin", one_time)
    page.wait_for_url("**/dashboard/account/password")
    assert "given to you by someone else" in page.content()
    page.goto(base + "/dashboard/users")
    page.wait_for_url("**/dashboard/account/password")
    shoot(page, "accounts-01-forced-change")
    page.fill("input[name=current]", one_time)
    page.fill("input[name=password]", "my own garden password")
    page.fill("input[name=confirm]", "my own garden password")
    page.click("button:has-text('Change password')")
    page.wait_for_url("**/dashboard/channels")
    page.wait_for_selector("text=Password changed")

    # The one-time password no longer works; the new one does (another browser).
    other = browser.new_context(viewport=DESKTOP)
    visitor = other.new_page()
    sign_in(visitor, base, "admin", one_time)
    visitor.wait_for_selector("text=Wrong username or password")

    # Create a user, who signs in (and must change the password the admin chose).
    page.goto(base + "/dashboard/users")
    new_user = page.locator("form:has(button:has-text('Create user'))")
    new_user.locator("input[name=username]").fill("bob")
    new_user.locator("input[name=password]").fill("chosen-by-admin")
    page.click("button:has-text('Create user')")
    page.wait_for_selector("text=Created user bob")
    sign_in(visitor, base, "bob", "chosen-by-admin")
    visitor.wait_for_url("**/dashboard/account/password")

    # Disable bob: his open session ends, and his sign-in is refused.
    page.click("button[aria-label='Disable bob']")
    page.wait_for_selector("text=Disabled bob")
    assert "disabled" in str(page.locator("tr:has-text('bob')").text_content())
    shoot(page, "accounts-02-user-disabled")
    visitor.goto(base + "/dashboard/channels")
    visitor.wait_for_url("**/dashboard/login**")
    sign_in(visitor, base, "bob", "chosen-by-admin")
    visitor.wait_for_selector("text=This account is disabled")
    assert "/dashboard/login" in visitor.url
    other.close()
    admin.close()
