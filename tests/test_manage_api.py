"""Management API: channels, fields, keys and devices over JSON with a user key."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.factories import Account, make_user


@pytest.fixture
def alice(app) -> Account:  # type: ignore[no-untyped-def]
    return make_user("alice")


@pytest.fixture
def bob(app) -> Account:  # type: ignore[no-untyped-def]
    return make_user("bob")


def create(client: FlaskClient, who: Account, **body: object):  # type: ignore[no-untyped-def]
    return client.post("/api/v1/channels", json=body, headers=who.headers)


def test_create_channel_201_with_location(client: FlaskClient, alice: Account) -> None:
    response = create(
        client, alice, name="Weather", fields=["temperature", {"name": "humidity", "unit": "%"}]
    )
    assert response.status_code == 201
    body = response.get_json()
    assert response.headers["Location"] == f"/api/v1/channels/{body['id']}"
    assert [f["name"] for f in body["fields"]] == ["temperature", "humidity"]
    assert body["fields"][1]["unit"] == "%"
    fetched = client.get(response.headers["Location"], headers=alice.headers)
    assert fetched.status_code == 200 and fetched.get_json()["name"] == "Weather"


def test_duplicate_name_is_409(client: FlaskClient, alice: Account, bob: Account) -> None:
    assert create(client, alice, name="Weather").status_code == 201
    response = create(client, alice, name="Weather")
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "conflict"
    assert create(client, bob, name="Weather").status_code == 201  # names are per owner


def test_foreign_channel_is_404_not_403(client: FlaskClient, alice: Account, bob: Account) -> None:
    channel_id = create(client, alice, name="Private").get_json()["id"]
    for method in ("get", "patch", "delete"):
        response = getattr(client, method)(f"/api/v1/channels/{channel_id}", json={}, headers=bob.headers)
        assert response.status_code == 404
    assert client.get("/api/v1/channels/999999", headers=alice.headers).status_code == 404
    assert client.get(f"/api/v1/channels/{channel_id}", headers=alice.headers).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/channels/{big}"),
        ("delete", "/api/v1/channels/{big}"),
        ("get", "/api/v1/channels/{big}/keys"),
        ("delete", "/api/v1/channels/{big}/fields/1"),
        ("patch", "/api/v1/channels/{own}/fields/{big}"),
        ("get", "/api/v1/channels/{own}/keys/{big}"),
        ("get", "/channels/{big}/feeds.json"),
    ],
)
def test_ids_beyond_integer_are_404(client: FlaskClient, alice: Account, method: str, path: str) -> None:
    """Found by schemathesis: the database refused to bind such an id (a 500).

    PostgreSQL's INTEGER stops at 2**31 - 1, SQLite's driver at 2**63 - 1.
    """
    own = create(client, alice, name="A").get_json()["id"]
    for big in (2**31 - 1, 2**31, 2**63, 200599385455208988672):
        url = path.format(big=big, own=own)
        response = getattr(client, method)(url, json={"unit": "x"}, headers=alice.headers)
        assert response.status_code == 404, url


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer WRONGKEY"},
        {"X-Fieldstation-Key": "nope"},
        {"Authorization": "Basic eDp5"},
    ],
)
def test_missing_or_wrong_key_is_401(client: FlaskClient, alice: Account, headers: dict[str, str]) -> None:
    response = client.get("/api/v1/channels", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"


def test_x_fieldstation_key_header(client: FlaskClient, alice: Account) -> None:
    assert client.get("/api/v1/channels", headers={"X-Fieldstation-Key": alice.key}).status_code == 200


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"{not json", "not valid JSON"),
        (b"", "must be JSON"),
        (b"[]", "body"),
        (b'{"name": 5}', "name"),
        (b'{"name": "x", "colour": "red"}', "colour"),
        (b'{"name": ""}', "name"),
        (b'{"name": "x", "public": "yes"}', "public"),
        (b'{"name": "x", "latitude": 91}', "latitude"),
        (b'{"name": "x", "fields": ["a", "a"]}', "unique"),
        (b"\xff\xfe", "JSON"),
    ],
)
def test_bad_bodies_are_400(client: FlaskClient, alice: Account, body: bytes, fragment: str) -> None:
    response = client.post(
        "/api/v1/channels", data=body, headers={**alice.headers, "Content-Type": "application/json"}
    )
    assert response.status_code == 400, response.get_json()
    assert fragment in response.get_json()["error"]["message"]
    assert client.get("/api/v1/channels", headers=alice.headers).get_json() == []


def test_oversized_body_is_413(client: FlaskClient, alice: Account) -> None:
    client.application.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/api/v1/channels", data=b"{" + b" " * 4096 + b"}", headers=alice.headers)
    assert response.status_code == 413
    assert "error" in response.get_json()


def test_null_settings_are_refused_or_cleared_alike_on_create_and_patch(
    client: FlaskClient, alice: Account
) -> None:
    """Found by schemathesis: POST took ``"public": null`` (201) where PATCH says 400."""
    for setting in ("description", "public", "min_interval_s"):
        response = create(client, alice, name="A", **{setting: None})
        assert response.status_code == 400, setting
        assert response.get_json()["error"]["message"] == f"{setting} cannot be null"
    response = create(client, alice, name="A", latitude=None, retention_days=None, mqtt_topic_prefix=None)
    assert response.status_code == 201
    body = response.get_json()
    assert body["latitude"] is None and body["public"] is False and body["description"] == ""
    response = client.patch(response.headers["Location"], json={"public": None}, headers=alice.headers)
    assert response.status_code == 400


def test_update_and_delete_channel(client: FlaskClient, alice: Account) -> None:
    location = create(client, alice, name="A").headers["Location"]
    response = client.patch(location, json={"description": "roof", "public": True}, headers=alice.headers)
    assert response.status_code == 200 and response.get_json()["public"] is True
    assert client.patch(location, json={"name": None}, headers=alice.headers).status_code == 400
    assert client.delete(location, headers=alice.headers).status_code == 204
    assert client.get(location, headers=alice.headers).status_code == 404


def test_fields(client: FlaskClient, alice: Account) -> None:
    location = create(client, alice, name="A", fields=["t"]).headers["Location"]
    response = client.post(f"{location}/fields", json={"name": "rh", "unit": "%"}, headers=alice.headers)
    assert response.status_code == 201 and response.get_json()["number"] == 2
    assert response.headers["Location"] == f"{location}/fields/2"
    assert client.post(f"{location}/fields", json={"name": "rh"}, headers=alice.headers).status_code == 409
    assert (
        client.patch(f"{location}/fields/2", json={"name": "humidity"}, headers=alice.headers).status_code
        == 200
    )
    names = [f["name"] for f in client.get(f"{location}/fields", headers=alice.headers).get_json()]
    assert names == ["t", "humidity"]
    response = client.patch(f"{location}/fields/2", json={"name": None}, headers=alice.headers)
    assert response.status_code == 400, "was a 409 'channel already has a field named None'"
    response = client.patch(f"{location}/fields/2", json={"unit": None}, headers=alice.headers)
    assert response.status_code == 200 and response.get_json()["name"] == "humidity"
    assert client.delete(f"{location}/fields/2", headers=alice.headers).status_code == 204
    assert client.get(f"{location}/fields/2", headers=alice.headers).status_code == 404


def test_fields_made_by_hand_meet_max_fields_per_channel(app, client: FlaskClient, alice: Account) -> None:  # type: ignore[no-untyped-def]
    """The limit line protocol's new fields meet holds for the API (and the CLI and dashboard) too."""
    app.config["MAX_FIELDS_PER_CHANNEL"] = 2
    response = create(client, alice, name="Wide", fields=["a", "b", "c"])
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "too_many_fields"
    assert client.get("/api/v1/channels", headers=alice.headers).get_json() == []
    location = create(client, alice, name="A", fields=["a", "b"]).headers["Location"]
    response = client.post(f"{location}/fields", json={"name": "c"}, headers=alice.headers)
    assert response.status_code == 400 and "at most 2 fields" in response.get_json()["error"]["message"]
    assert [f["name"] for f in client.get(f"{location}/fields", headers=alice.headers).get_json()] == [
        "a",
        "b",
    ]
    assert client.delete(f"{location}/fields/2", headers=alice.headers).status_code == 204
    assert client.post(f"{location}/fields", json={"name": "c"}, headers=alice.headers).status_code == 201


def test_keys_shown_once_and_revocable(client: FlaskClient, alice: Account) -> None:
    location = create(client, alice, name="A").headers["Location"]
    response = client.post(
        f"{location}/keys",
        json={"kind": "write", "device": "AA:BB:CC:00:11:22"},
        headers=alice.headers,
    )
    assert response.status_code == 201
    key = response.get_json()
    assert len(key["key"]) == 16 and key["device"] == "aa:bb:cc:00:11:22"
    listed = client.get(f"{location}/keys", headers=alice.headers).get_json()
    assert [k["prefix"] for k in listed] == [key["key"][:4]]
    assert all("key" not in k for k in listed)
    assert client.delete(f"{location}/keys/{key['id']}", headers=alice.headers).status_code == 204
    assert client.get(f"{location}/keys/{key['id']}", headers=alice.headers).get_json()["revoked_at"]
    bad = client.post(f"{location}/keys", json={"kind": "user"}, headers=alice.headers)
    assert bad.status_code == 400


def test_devices(client: FlaskClient, alice: Account) -> None:
    location = create(client, alice, name="A").headers["Location"]
    response = client.post(f"{location}/devices", json={"device": "6c:rf:7f:2b:0e:g8"}, headers=alice.headers)
    assert response.status_code == 201
    assert (
        client.post(
            f"{location}/devices", json={"device": "6C:RF:7F:2B:0E:G8"}, headers=alice.headers
        ).status_code
        == 409
    )
    assert (
        client.post(f"{location}/devices", json={"device": "no spaces"}, headers=alice.headers).status_code
        == 400
    )
    assert client.get(f"{location}/devices", headers=alice.headers).get_json() == [
        {"device": "6c:rf:7f:2b:0e:g8", "label": None}
    ]
    assert client.delete(f"{location}/devices/6c:rf:7f:2b:0e:g8", headers=alice.headers).status_code == 204
    assert client.delete(f"{location}/devices/6c:rf:7f:2b:0e:g8", headers=alice.headers).status_code == 404


def test_unknown_route_and_method_are_json(client: FlaskClient, alice: Account) -> None:
    response = client.get("/api/v1/nothing", headers=alice.headers)
    assert response.status_code == 404 and response.get_json()["error"]["code"] == "not_found"
    response = client.put("/api/v1/channels", headers=alice.headers)
    assert response.status_code == 405 and "error" in response.get_json()
    # Found by schemathesis: the JSON error lost Werkzeug's Allow header, which a 405 must carry.
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    response = client.open("/api/v1/channels/1", method="TRACE", headers=alice.headers)
    assert response.status_code == 405 and "DELETE" in response.headers["Allow"]
