"""Account life cycle: disable, enable, delete with channels handed over or deleted (both engines)."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner

from fieldstation import accounts, manage
from fieldstation.errors import Conflict, Forbidden
from fieldstation.models import Channel
from tests.factories import PASSWORD, make_channel, make_user


def test_disabled_account_cannot_sign_in_nor_use_its_user_key(app: Flask, client: FlaskClient) -> None:
    admin = make_user("root", admin=True)
    bob = make_user("bob")
    keys = make_channel(bob.user, "garden")
    assert client.get("/api/v1/channels", headers=bob.headers).status_code == 200
    accounts.disable(bob.user, admin.user)
    assert client.get("/api/v1/channels", headers=bob.headers).status_code == 401
    assert client.get(f"/channels/{keys.id}/feeds.json", query_string={"api_key": bob.key}).status_code == 404
    # Its channel keeps taking readings and its read key still reads.
    assert client.post("/update", data={"api_key": keys.write_key, "field1": 1}).get_data(as_text=True) == "1"
    assert (
        client.get(f"/channels/{keys.id}/feeds.json", query_string={"api_key": keys.read_key}).status_code
        == 200
    )
    assert manage.authenticate("bob", PASSWORD).disabled_at is not None  # type: ignore[union-attr]
    accounts.enable(bob.user)
    assert client.get("/api/v1/channels", headers=bob.headers).status_code == 401  # revoked for good
    assert manage.authenticate("bob", PASSWORD).disabled_at is None  # type: ignore[union-attr]


def test_admins_cannot_lock_themselves_out(app: Flask) -> None:
    admin = make_user("root", admin=True)
    with pytest.raises(Forbidden):
        accounts.disable(admin.user, admin.user)
    with pytest.raises(Conflict, match="last active administrator"):
        accounts.delete(admin.user, None, None)


def test_delete_hands_channels_over_with_their_keys(app: Flask, client: FlaskClient) -> None:
    carol = make_user("carol")
    bob = make_user("bob")
    keys = make_channel(bob.user, "garden")
    assert accounts.hand_over_plan(bob.user, carol.user) == [
        "Their 1 channel(s) go to carol, with their data and keys: garden."
    ]
    accounts.delete(bob.user, None, carol.user)
    assert manage.find_channel("garden").owner_id == carol.user.id
    assert client.post("/update", data={"api_key": keys.write_key, "field1": 2}).get_data(as_text=True) == "1"
    assert client.get(f"/api/v1/channels/{keys.id}", headers=carol.headers).status_code == 200
    assert manage.authenticate("bob", PASSWORD) is None


def test_delete_without_heir_deletes_the_channels_and_a_name_clash_changes_nothing(app: Flask) -> None:
    carol = make_user("carol")
    bob = make_user("bob")
    make_channel(bob.user, "garden")
    make_channel(carol.user, "garden")
    with pytest.raises(Conflict, match="carol already has a channel named 'garden'"):
        accounts.delete(bob.user, None, carol.user)
    assert manage.get_user("bob") is not None
    accounts.delete(bob.user, None, None)
    assert [c.owner_id for c in app.extensions["sqlalchemy"].session.query(Channel)] == [carol.user.id]


def test_cli_disable_and_delete_say_what_happens(runner: FlaskCliRunner) -> None:
    bob = make_user("bob")
    make_channel(bob.user, "garden")
    assert runner.invoke(args=["user", "disable", "bob"]).exit_code == 0
    refused = runner.invoke(args=["user", "delete", "bob"], input="n\n")
    assert refused.exit_code == 1
    assert "Their 1 channel(s) and all their data are deleted: garden." in refused.output
    assert runner.invoke(args=["user", "delete", "bob", "--yes"]).exit_code == 0
    assert "bob" not in runner.invoke(args=["user", "list"]).output
