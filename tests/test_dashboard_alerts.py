"""The dashboard's part of issue 19: limits on the channel form, alert rules on the channel page."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient

from fieldstation import manage
from fieldstation.alerts import rules
from fieldstation.models import AlertDelivery
from tests.factories import ChannelKeys, make_channel, make_user
from tests.test_dashboard import sign_in


@pytest.fixture
def web(app: Flask) -> FlaskClient:
    app.config["WTF_CSRF_ENABLED"] = False
    client = app.test_client()
    return client


@pytest.fixture
def channel(app: Flask) -> ChannelKeys:
    return make_channel(make_user().user)


def edit(web: FlaskClient, channel: ChannelKeys, **limits: str) -> int:
    data = {"name": "weather", "fields-0-number": "1", "fields-0-name": "temperature"}
    data |= {"fields-1-number": "2", "fields-1-name": "humidity", "devices": "", **limits}
    return web.post(f"/dashboard/channels/{channel.id}/edit", data=data).status_code


def test_retention_and_rate_limit_on_the_channel_form(web: FlaskClient, channel: ChannelKeys) -> None:
    sign_in(web)
    assert edit(web, channel, retention_days="30", min_interval_s="15") == 302
    saved = manage.channel_for(channel.channel.owner, channel.id)
    assert (saved.retention_days, saved.min_interval_s) == (30, 15)
    form = web.get(f"/dashboard/channels/{channel.id}/edit").text
    assert 'name="retention_days"' in form and 'value="30"' in form and 'value="15"' in form
    for bad in (
        {"retention_days": "0"},
        {"retention_days": "x"},
        {"min_interval_s": "-1"},
        {"min_interval_s": "90000"},
    ):
        assert edit(web, channel, **bad) == 400
    assert edit(web, channel, retention_days="", min_interval_s="0") == 302
    saved = manage.channel_for(channel.channel.owner, channel.id)
    assert (saved.retention_days, saved.min_interval_s) == (None, 0)


def test_make_test_and_delete_a_rule_on_the_channel_page(web: FlaskClient, channel: ChannelKeys) -> None:
    sign_in(web)
    page = f"/dashboard/channels/{channel.id}"
    made = web.post(
        f"{page}/alerts",
        data={"name": "warm", "kind": "threshold", "field": "1", "op": "above", "threshold": "30",
              "for_minutes": "2", "webhook_url": "http://127.0.0.1:9/hook"},
    )  # fmt: skip
    assert made.status_code == 302
    (rule,) = rules.rules_of(channel.id)
    assert (rule.for_s, rule.threshold, rule.op) == (120, 30.0, "above")
    shown = web.get(page).text
    assert "warm" in shown and "temperature above 30.0 for 2 min" in shown
    assert web.post(f"{page}/alerts/{rule.id}/test").status_code == 302
    (delivery,) = rules.history(rule.id)[0].deliveries
    assert isinstance(delivery, AlertDelivery) and "test" in web.get(page).text
    refused = web.post(
        f"{page}/alerts",
        data={"name": "x", "kind": "silence", "silence_minutes": "5", "webhook_url": "file:///x"},
    )
    assert refused.status_code == 400 and "http://" in refused.text
    assert web.post(f"{page}/alerts/{rule.id}/delete").status_code == 302
    assert rules.rules_of(channel.id) == []
    other = make_user("bob")
    web.post("/dashboard/logout")
    sign_in(web, "bob")
    assert (
        web.post(f"{page}/alerts", data={"name": "x", "kind": "silence", "silence_minutes": "5"}).status_code
        == 404
    )
    assert other.user.username == "bob"
