"""The dashboard through Flask's test client, on SQLite and PostgreSQL: what a user would check."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path

import pytest
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from fieldstation import auth, manage, signin, store
from fieldstation.errors import Unauthorized
from fieldstation.extensions import db
from fieldstation.models import KeyKind, SignInFailures
from fieldstation.points import Batch, Entry
from fieldstation.timeunits import US, now_us
from tests.factories import PASSWORD, make_channel, make_user


@pytest.fixture
def web(app: Flask) -> FlaskClient:
    """A browser-like client; CSRF is off here (test_csrf_* below keep it on)."""
    app.config["WTF_CSRF_ENABLED"] = False
    return app.test_client()


def sign_in(client: FlaskClient, username: str = "alice", password: str = PASSWORD) -> None:
    response = client.post("/dashboard/login", data={"username": username, "password": password})
    assert response.status_code == 302, response.text


def write(channel_id: int, *entries: Entry) -> None:
    store.write(Batch(channel_id, list(entries)))


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert found, "form has no CSRF token"
    return found.group(1)


# -- sign in / out ---------------------------------------------------------------------------


def test_front_door_leads_to_sign_in_then_my_channels(web: FlaskClient) -> None:
    make_user()
    response = web.get("/")
    assert response.status_code == 302
    assert web.get(response.location).status_code == 302  # My channels wants a user
    assert "/dashboard/login" in web.get("/dashboard/channels").location
    sign_in(web)
    assert web.get("/", follow_redirects=True).request.path == "/dashboard/channels"


def test_wrong_password_is_refused_with_one_message(web: FlaskClient) -> None:
    make_user()
    response = web.post("/dashboard/login", data={"username": "alice", "password": "wrong password"})
    assert response.status_code == 401
    assert "Wrong username or password" in response.text
    unknown = web.post("/dashboard/login", data={"username": "nobody", "password": "wrong password"})
    assert unknown.status_code == 401
    assert web.get("/dashboard/channels").status_code == 302


def test_sign_in_redirects_only_to_this_site(web: FlaskClient) -> None:
    make_user()
    response = web.post(
        "/dashboard/login",
        data={"username": "alice", "password": PASSWORD, "next": "https://evil.example/x"},
    )
    assert response.location == "/dashboard/channels"


def test_session_cookie_is_httponly_samesite_and_secure_in_production(web: FlaskClient) -> None:
    make_user()
    response = web.post("/dashboard/login", data={"username": "alice", "password": PASSWORD})
    cookie = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("session="))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" in cookie  # the tests run ProductionConfig's cookie settings


def _login(web: FlaskClient, name: str, password: str, address: str = "127.0.0.1") -> int:
    data = {"username": name, "password": password}
    return web.post("/dashboard/login", data=data, environ_base={"REMOTE_ADDR": address}).status_code


def test_wrong_passwords_in_a_row_make_the_name_wait(web: FlaskClient) -> None:
    """Five wrong passwords, then even the right one waits (429) until the wait is over."""
    make_user()
    for _ in range(signin.NAME_FREE_TRIES):
        assert _login(web, "alice", "guess") == 401
    waiting = web.post("/dashboard/login", data={"username": "alice", "password": PASSWORD})
    assert waiting.status_code == 429 and "Too many wrong passwords; try again in 1 min" in waiting.text
    assert web.get("/dashboard/channels").status_code == 302  # not signed in
    make_user("bob")  # other accounts are not held up
    assert _login(web, "bob", PASSWORD) == 302
    web.post("/dashboard/logout")

    db.session.execute(
        sa.update(SignInFailures).values(last_failure_us=SignInFailures.last_failure_us - signin.WAIT_S * US)
    )  # the wait has passed
    db.session.commit()
    assert _login(web, "alice", PASSWORD) == 302
    assert [signin.wait_after(n, 5) for n in (4, 5, 6, 7, 20)] == [0, 30, 60, 120, 900]


def test_the_throttle_answers_alike_for_names_that_exist_and_names_that_do_not(web: FlaskClient) -> None:
    """Issue 17: a known name answered 429 after five wrong passwords, an unknown one 401."""
    make_user()
    answers = {name: [_login(web, name, "guess") for _ in range(6)] for name in ("alice", "nobody")}
    assert answers["alice"] == answers["nobody"] == [401] * 5 + [429]


def test_a_stranger_cannot_hold_the_owner_out_and_an_address_has_a_limit(web: FlaskClient) -> None:
    """Guesses from one address make that address wait, for every name, not the owner elsewhere."""
    make_user()
    names = [f"guess{i}" for i in range(signin.ADDRESS_FREE_TRIES)]
    for i, name in enumerate(names):  # fewer than five per name: only the per-address limit can stop it
        assert _login(web, name, "guess", "203.0.113.9") == 401, i
    for _ in range(signin.NAME_FREE_TRIES):
        _login(web, "alice", "guess", "203.0.113.9")
    assert _login(web, "someone-new", "guess", "203.0.113.9") == 429  # the address waits
    assert _login(web, "alice", PASSWORD, "203.0.113.9") == 429
    assert _login(web, "alice", PASSWORD, "198.51.100.7") == 302  # the owner, elsewhere, does not


def test_pages_cannot_be_framed_but_the_embeddable_chart_can(web: FlaskClient) -> None:
    keys = make_channel(make_user().user, "weather", public=True)
    sign_in(web)
    page = web.get(f"/dashboard/channels/{keys.id}")
    assert page.headers["X-Frame-Options"] == "DENY"
    assert page.headers["Content-Security-Policy"] == "frame-ancestors 'none'"
    assert page.headers["Cache-Control"] == "no-store" and page.headers["X-Content-Type-Options"] == "nosniff"
    embed = web.get(f"/channels/{keys.id}/charts/1")
    assert embed.status_code == 200 and "X-Frame-Options" not in embed.headers
    assert "Content-Security-Policy" not in embed.headers
    feed = web.get(f"/channels/{keys.id}/feeds.json")
    assert feed.headers["X-Content-Type-Options"] == "nosniff"


def test_device_requests_get_no_session_and_pages_still_do(app: Flask) -> None:
    """A cookie-less /update or API read sets no cookie and adds no Vary; a first visit to a
    dashboard page still gets its session (its CSRF token lives there)."""
    keys = make_channel(make_user().user, "weather")
    device = app.test_client(use_cookies=False)
    for url in (
        f"/update?api_key={keys.write_key}&field1=1",
        f"/channels/{keys.id}/feeds.json?api_key={keys.read_key}",
    ):
        response = device.get(url)
        assert response.status_code == 200
        assert "Set-Cookie" not in response.headers and "Vary" not in response.headers
    first_visit = app.test_client().get("/dashboard/login")
    assert any(h.startswith("session=") for h in first_visit.headers.getlist("Set-Cookie"))
    assert csrf_of(first_visit.text)


def test_sign_out_ends_the_session(app: Flask, web: FlaskClient) -> None:
    """Every session of the account ends, a copied cookie and another browser's included."""
    make_user()
    sign_in(web)
    cookie = web.get_cookie("session")
    assert cookie is not None and "correct" not in cookie.value
    laptop = app.test_client()
    sign_in(laptop)
    assert laptop.get("/dashboard/channels").status_code == 200
    assert web.post("/dashboard/logout").status_code == 302
    assert web.get("/dashboard/channels").status_code == 302
    thief = app.test_client()
    thief.set_cookie("session", cookie.value)
    assert thief.get("/dashboard/channels").status_code == 302, "a copied cookie must not outlive sign-out"
    assert laptop.get("/dashboard/channels").status_code == 302
    sign_in(web)  # signing in again works
    assert web.get("/dashboard/channels").status_code == 200


def test_csrf_rejects_a_forged_post(app: Flask) -> None:
    """CSRF stays on here: a cross-site form without this session's token changes nothing."""
    app.config["WTF_CSRF_ENABLED"] = True
    owner = make_user()
    client = app.test_client()
    page = client.get("/dashboard/login")
    forged = client.post("/dashboard/login", data={"username": "alice", "password": PASSWORD})
    assert forged.status_code == 400
    assert client.get("/dashboard/channels").status_code == 302  # not signed in
    token = csrf_of(page.text)
    ok = client.post(
        "/dashboard/login", data={"username": "alice", "password": PASSWORD, "csrf_token": token}
    )
    assert ok.status_code == 302
    # Signed in, a forged "create channel" without the token is refused and creates nothing.
    assert client.post("/dashboard/channels/new", data={"name": "forged"}).status_code == 400
    assert manage.channels_of(owner.user) == []
    token = csrf_of(client.get("/dashboard/channels/new").text)
    made = client.post("/dashboard/channels/new", data={"name": "real", "csrf_token": token})
    assert made.status_code == 302
    assert [c.name for c in manage.channels_of(owner.user)] == ["real"]


# -- my channels -----------------------------------------------------------------------------


def test_create_edit_and_delete_a_channel(web: FlaskClient) -> None:
    owner = make_user()
    sign_in(web)
    response = web.post(
        "/dashboard/channels/new",
        data={
            "name": "energy",
            "description": "garage meter",
            "public": "y",
            "fields-0-name": "power",
            "fields-0-unit": "W",
            "fields-1-name": "temperature",
            "fields-1-unit": "°C",
            "fields-2-name": "",
            "devices": "6C:RF:7F:2B:0E:G8\n\n",
            "latitude": "52.52",
            "longitude": "13.40",
            "elevation": "",
        },
    )
    assert response.status_code == 302
    (channel,) = manage.channels_of(owner.user)
    assert [(f.number, f.name, f.unit) for f in channel.fields] == [
        (1, "power", "W"),
        (2, "temperature", "°C"),
    ]
    assert channel.public and channel.latitude == 52.52 and channel.description == "garage meter"
    assert [d.device_id for d in channel.devices] == ["6c:rf:7f:2b:0e:g8"]

    edit = web.get(f"/dashboard/channels/{channel.id}/edit")
    assert 'value="power"' in edit.text
    response = web.post(
        f"/dashboard/channels/{channel.id}/edit",
        data={
            "name": "energy meter",
            "fields-0-number": "1",
            "fields-0-name": "watts",
            "fields-0-unit": "W",
            "fields-1-number": "2",
            "fields-1-name": "temperature",
            "fields-1-unit": "°C",
            "fields-1-remove": "y",
            "fields-2-number": "",
            "fields-2-name": "humidity",
            "fields-2-unit": "%",
            "devices": "",
        },
    )
    assert response.status_code == 302
    channel = manage.channel_for(owner.user, channel.id)
    assert channel.name == "energy meter" and not channel.public
    assert [(f.number, f.name) for f in channel.fields] == [(1, "watts"), (2, "humidity")]
    assert channel.devices == []

    listing = web.get("/dashboard/channels")
    assert "energy meter" in listing.text and "No data yet" in listing.text
    confirm = web.get(f"/dashboard/channels/{channel.id}/delete")
    assert "cannot be undone" in confirm.text
    assert manage.channels_of(owner.user) != []
    assert web.post(f"/dashboard/channels/{channel.id}/delete").status_code == 302
    assert manage.channels_of(owner.user) == []


def test_bad_channel_input_is_a_clear_error_and_changes_nothing(web: FlaskClient) -> None:
    owner = make_user()
    make_channel(owner.user, "weather")
    sign_in(web)
    clash = web.post("/dashboard/channels/new", data={"name": "weather", "fields-0-name": "t"})
    assert clash.status_code == 409 and "already have a channel" in clash.text
    bad = web.post("/dashboard/channels/new", data={"name": "x", "latitude": "north"})
    assert bad.status_code == 400 and "latitude must be a number" in bad.text
    device = web.post("/dashboard/channels/new", data={"name": "y", "devices": "not a mac!"})
    assert device.status_code == 400
    assert [c.name for c in manage.channels_of(owner.user)] == ["weather"]


def shown_latest(html: str) -> tuple[str, list[tuple[str, str]]]:
    """The newest entry as a page shows it: its ``<time datetime>`` and each field's name and value."""
    time = re.search(r'class="latest-time">.*?<time datetime="([^"]+)">([^<]+)</time>', html, re.S)
    assert time, html
    values = re.search(r'<dl class="values[^"]*">(.*?)</dl>', html, re.S)
    assert values, html
    pairs = re.findall(r"<dt>(.*?)</dt><dd>(.*?)</dd>", values.group(1), re.S)
    shown = [(name, re.sub(r"<[^>]+>", "", value).strip()) for name, value in pairs]
    return f"{time.group(1)} {time.group(2)}", shown


def test_the_channel_list_shows_the_newest_entry_as_the_channel_page_does(web: FlaskClient) -> None:
    """One query (query.latest_entry) and one template (_latest.html) for both: a late reading
    stamped in the past, a newest entry without every field, and text values change neither."""
    owner = make_user()
    keys = make_channel(owner.user, "weather", ("temperature", "humidity", "sky"))
    manage.update_field(manage.get_field(keys.channel, 1), unit="°C")
    now = now_us() // US * US
    write(keys.id, Entry({1: 19.5, 2: 61.0, 3: "cloudy"}, ts=now - 3600 * US))
    write(keys.id, Entry({1: 21.25, 3: "clear"}, ts=now - 60 * US, status="door open"))  # no humidity
    write(keys.id, Entry({1: 5.0, 2: 99.0, 3: "late"}, ts=now - 7200 * US))  # arrives last, stamped earlier
    sign_in(web)
    listing = web.get("/dashboard/channels").text
    card = next(part for part in listing.split('<li class="card">')[1:] if ">weather</a>" in part)
    page = web.get(f"/dashboard/channels/{keys.id}").text.split('id="latest"')[1].split("</section>")[0]
    newest = dt.datetime.fromtimestamp((now - 60 * US) / US, dt.UTC).isoformat(timespec="seconds")
    time, values = shown_latest(page)
    assert time.startswith(f"{newest} ")
    assert values == [("temperature", "21.25 °C"), ("humidity", "–"), ("sky", "clear")]
    assert shown_latest(card) == (time, values)
    assert "Status: door open" in card and "Status: door open" in page
    live = web.get(f"/dashboard/channels/{keys.id}/live").get_json()["latest"]
    assert shown_latest(live) == (time, values)


def test_other_users_channels_are_404(web: FlaskClient) -> None:
    make_user()
    bob = make_user("bob")
    theirs = make_channel(bob.user, "bobs")
    sign_in(web)
    for path in ("", "/edit", "/keys", "/delete", "/import", "/live", "/export.csv"):
        assert web.get(f"/dashboard/channels/{theirs.id}{path}").status_code == 404, path
    assert web.post(f"/dashboard/channels/{theirs.id}/delete").status_code == 404


# -- keys ------------------------------------------------------------------------------------


def test_a_new_key_is_shown_once_with_examples_and_works(web: FlaskClient) -> None:
    owner = make_user()
    channel = manage.create_channel(owner.user, "weather", fields=["temperature"])
    sign_in(web)
    page = web.post(f"/dashboard/channels/{channel.id}/keys", data={"kind": "write", "label": "station"})
    assert page.status_code == 200
    raw = re.search(r'<code id="new-key">([A-Z0-9]{16})</code>', page.text)
    assert raw
    key = raw.group(1)
    assert f"api_key={key}&amp;field1=21.5" in page.text  # curl
    assert f"/update/API_key={key}/mac=" in page.text  # the seed's path URL
    assert "ThingSpeak.writeField" in page.text and "HTTPClient" in page.text
    assert f"/write?db={channel.id}" in page.text
    assert auth.authorize_write(key).channel_id == channel.id
    again = web.get(f"/dashboard/channels/{channel.id}/keys")
    assert key not in again.text and key[:4] in again.text

    (made,) = [k for k in manage.keys_of(channel) if k.label == "station"]
    assert web.post(f"/dashboard/channels/{channel.id}/keys/{made.id}/revoke").status_code == 302
    with pytest.raises(Unauthorized):
        auth.authorize_write(key)


def test_user_key_can_be_renewed_from_the_keys_page(web: FlaskClient) -> None:
    owner = make_user()
    channel = manage.create_channel(owner.user, "weather")
    sign_in(web)
    page = web.post(f"/dashboard/channels/{channel.id}/keys/user")
    new = re.search(r'<code id="new-key">([A-Z0-9]{16})</code>', page.text)
    assert new and "Authorization: Bearer" in page.text
    old = auth.find_key(owner.key)
    assert old is None  # making a new user key revoked the old one
    fresh = auth.find_key(new.group(1))
    assert fresh is not None and fresh.kind == KeyKind.USER
    assert web.post(f"/dashboard/channels/{channel.id}/keys/{fresh.id}/revoke").status_code == 302
    assert auth.find_key(new.group(1)) is None
    # Someone else's key cannot be revoked through my channel.
    bob = make_user("bob")
    bobs = auth.find_key(bob.key)
    assert bobs is not None
    assert web.post(f"/dashboard/channels/{channel.id}/keys/{bobs.id}/revoke").status_code == 404
    assert auth.find_key(bob.key) is not None


# -- channel view ----------------------------------------------------------------------------


def test_channel_page_shows_newest_entry_and_a_chart_per_field(web: FlaskClient) -> None:
    owner = make_user()
    keys = make_channel(owner.user, "weather", ("temperature", "humidity"))
    now = now_us()
    write(keys.id, Entry({1: 20.0, 2: 50.0}, ts=now - 600 * US), Entry({1: 21.5, 2: 55.0}, ts=now - 60 * US))
    write(keys.id, Entry({1: 22.25}, ts=now - 30 * US, status="door open"))
    sign_in(web)
    page = web.get(f"/dashboard/channels/{keys.id}?range=1h")
    assert page.status_code == 200
    latest = page.text.split('id="latest"')[1].split("</section>")[0]
    assert "22.25" in latest and "door open" in latest
    assert page.text.count("<svg") == 3  # temperature, humidity, and the two-axis chart
    assert '<title id="chart-f1-t">temperature</title>' in page.text
    assert "temperature: 3 readings" in page.text  # the chart's description for screen readers
    for preset in ("1h", "12h", "24h", "7d", "30d", "1y"):
        assert f'data-range="{preset}"' in page.text
        assert web.get(f"/dashboard/channels/{keys.id}?range={preset}").status_code == 200
    assert web.get(f"/dashboard/channels/{keys.id}?range=2h").status_code == 400


def test_custom_range_is_read_in_the_viewer_zone(web: FlaskClient) -> None:
    owner = make_user()
    keys = make_channel(owner.user)
    write(keys.id, Entry({1: 5.0}, ts=1_700_000_000 * US))  # 2023-11-14 22:13:20 UTC
    sign_in(web)
    web.set_cookie("fs_tz", "Asia%2FTokyo")  # as the page script writes it
    page = web.get(f"/dashboard/channels/{keys.id}?start=2023-11-15T07:00&end=2023-11-15T08:00")
    assert "Asia/Tokyo" in page.text
    assert "temperature: 1 readings" in page.text  # 07:13 in Tokyo is inside the window
    assert "2023-11-15 07:13:20" in page.text
    backwards = web.get(f"/dashboard/channels/{keys.id}?start=2023-11-15T08:00&end=2023-11-15T07:00")
    assert backwards.status_code == 400 and "end after it starts" in backwards.text
    assert web.get(f"/dashboard/channels/{keys.id}?start=soon").status_code == 400
    assert web.get(f"/dashboard/channels/{keys.id}?tz=Mars/Olympus").status_code == 400


def test_live_endpoint_answers_only_the_version_until_data_arrives(web: FlaskClient) -> None:
    owner = make_user()
    keys = make_channel(owner.user)
    write(keys.id, Entry({1: 20.0}))
    sign_in(web)
    first = web.get(f"/dashboard/channels/{keys.id}/live?range=1h").get_json()
    assert first["changed"] and "f1" in first["charts"] and "20" in first["latest"]
    same = web.get(f"/dashboard/channels/{keys.id}/live?range=1h&since={first['version']}").get_json()
    assert same == {"version": first["version"], "changed": False}
    write(keys.id, Entry({1: 23.75}))
    after = web.get(f"/dashboard/channels/{keys.id}/live?range=1h&since={first['version']}").get_json()
    assert after["changed"] and "23.75" in after["latest"]
    assert "<svg" in after["charts"]["f1"] and "pair" in after["charts"]


def test_public_channel_works_signed_out_and_private_is_404(web: FlaskClient) -> None:
    owner = make_user()
    public = make_channel(owner.user, "open", public=True)
    private = make_channel(owner.user, "closed")
    write(public.id, Entry({1: 1.0}))
    assert web.get(f"/dashboard/channels/{public.id}").status_code == 200
    assert web.get(f"/dashboard/channels/{public.id}/live").status_code == 200
    assert web.get(f"/channels/{public.id}/charts/1").status_code == 200
    for path in (
        f"/dashboard/channels/{private.id}",
        f"/dashboard/channels/{private.id}/live",
        f"/dashboard/channels/{private.id}/export.csv",
        f"/channels/{private.id}/charts/1",
        "/dashboard/channels/999999",
    ):
        response = web.get(path)
        assert response.status_code == 404, path
        assert "closed" not in response.text
    # A read key of the channel opens it (as ThingSpeak's api_key does).
    assert web.get(f"/channels/{private.id}/charts/1?api_key={private.read_key}").status_code == 200
    assert web.get(f"/channels/{private.id}/charts/1?api_key={public.read_key}").status_code == 404
    page = web.get(f"/dashboard/channels/{public.id}")
    assert "Keys</a>" not in page.text and "Delete</a>" not in page.text  # no owner actions
    # ThingSpeak's address of a channel's page leads to it, with its query string
    moved = web.get(f"/channels/{public.id}?range=7d")
    assert moved.status_code == 302 and moved.location == f"/dashboard/channels/{public.id}?range=7d"
    assert web.get(f"/channels/{private.id}", follow_redirects=True).status_code == 404


def test_embedded_chart_takes_range_and_size(web: FlaskClient) -> None:
    owner = make_user()
    keys = make_channel(owner.user, public=True)
    write(keys.id, Entry({1: 3.0}, ts=now_us() - 3 * 86_400 * US))
    page = web.get(f"/channels/{keys.id}/charts/1?days=7&width=600&height=300&title=Outside")
    assert page.status_code == 200
    assert 'viewBox="0 0 600 300"' in page.text and "<title>Outside" in page.text
    assert "temperature: 1 readings" in page.text
    short = web.get(f"/channels/{keys.id}/charts/1?range=1h")
    assert "No data in this range" in short.text
    assert web.get(f"/channels/{keys.id}/charts/9").status_code == 404
    write(keys.id, *(Entry({1: float(d)}, ts=now_us() - d * 86_400 * US) for d in (10, 20, 30)))
    assert "temperature: 2 readings" in web.get(f"/channels/{keys.id}/charts/1?results=2").text
    assert "temperature: 4 readings" in web.get(f"/channels/{keys.id}/charts/1?results=100").text
    assert web.get(f"/channels/{keys.id}/charts/1?days=lots").status_code == 400


# -- CSV -------------------------------------------------------------------------------------


def test_csv_download_of_the_range_shown_uploads_again(web: FlaskClient) -> None:
    owner = make_user()
    keys = make_channel(owner.user, "weather", ("temperature", "humidity"))
    base = now_us() - 3600 * US
    write(
        keys.id,
        Entry({1: 20.5, 2: 40.0}, ts=base, status='said "hi", then left'),
        Entry({1: 21.0}, ts=base + 60 * US),
    )
    write(keys.id, Entry({1: 1.0}, ts=base - 40 * 86_400 * US))  # outside the 30 d range
    sign_in(web)
    body = web.get(f"/dashboard/channels/{keys.id}/export.csv?range=30d")
    assert body.mimetype == "text/csv"
    lines = body.text.splitlines()
    assert lines[0] == "time,entry_id,temperature,humidity,status,latitude,longitude,elevation"
    assert len(lines) == 3
    assert lines[1].endswith(',20.5,40,"said ""hi"", then left",,,')
    assert "Z," in lines[1]
    other_range = web.get(f"/dashboard/channels/{keys.id}/export.csv?range=1y").text
    assert len(other_range.splitlines()) == 4  # the range shown decides

    other = make_channel(owner.user, "copy", ("temperature", "humidity"))
    report = web.post(
        f"/dashboard/channels/{other.id}/import",
        data={"file": (io.BytesIO(body.data), "export.csv")},
        content_type="multipart/form-data",
    )
    assert report.status_code == 200
    assert "imported <strong>2</strong> rows (3 readings)" in report.text
    copied = web.get(f"/dashboard/channels/{other.id}/export.csv?range=30d").text
    assert [line.split(",", 2)[2] for line in copied.splitlines()[1:]] == [
        line.split(",", 2)[2] for line in lines[1:]
    ]


def test_csv_import_is_whole_on_a_rate_limited_channel(web: FlaskClient) -> None:
    """The minimum interval paces devices; the owner's file of history is written in full."""
    owner = make_user()
    keys = make_channel(owner.user, "weather", ("temperature", "humidity"))
    manage.update_channel(keys.channel, min_interval_s=60)
    sign_in(web)
    base = now_us() // US - 10_000
    rows = "".join(f"{base + i},{i}\n" for i in range(2500))  # three of the import's batches
    report = web.post(
        f"/dashboard/channels/{keys.id}/import",
        data={"file": (io.BytesIO(f"time,temperature\n{rows}".encode()), "history.csv")},
        content_type="multipart/form-data",
    )
    assert report.status_code == 200 and "imported <strong>2500</strong> rows" in report.text
    device = web.get(f"/update?api_key={keys.write_key}&field1=1")
    assert device.text == "0" and "every 60 s" in device.headers["X-Fieldstation-Error"]


def test_csv_upload_reports_each_bad_row_and_imports_nothing(web: FlaskClient) -> None:
    owner = make_user()
    keys = make_channel(owner.user, "weather", ("temperature", "humidity"))
    sign_in(web)
    text = (
        "time,temperature,humidity\n"
        "2026-01-01T00:00:00Z,1.5,30\n"
        "yesterday,2.5,31\n"
        "2026-01-01T00:02:00Z,,\n"
        "2026-01-01T00:03:00Z,nan,32\n"
        "1767225840,4.5,33\n"
    )
    upload = {"file": (io.BytesIO(text.encode()), "data.csv")}
    report = web.post(
        f"/dashboard/channels/{keys.id}/import", data=upload, content_type="multipart/form-data"
    )
    assert report.status_code == 400
    assert "<td>3</td><td>not an ISO 8601 time" in report.text
    assert "<td>4</td><td>the row has no values" in report.text
    assert "<td>5</td><td>values must be finite" in report.text
    assert "nothing was imported" in report.text
    assert web.get(f"/dashboard/channels/{keys.id}/export.csv?range=1y").text.count("\n") == 1

    upload = {"file": (io.BytesIO(text.encode()), "data.csv"), "skip_bad": "y"}
    report = web.post(
        f"/dashboard/channels/{keys.id}/import", data=upload, content_type="multipart/form-data"
    )
    assert report.status_code == 200 and "imported <strong>2</strong> rows" in report.text
    for bad in ("temperature\n1\n", "time,pressure\n1,2\n", "\xff\xfe".encode("latin-1").decode("latin-1")):
        upload = {"file": (io.BytesIO(bad.encode("latin-1")), "bad.csv")}
        page = web.post(
            f"/dashboard/channels/{keys.id}/import", data=upload, content_type="multipart/form-data"
        )
        assert page.status_code == 400
        assert 'class="flash error"' in page.text


# -- admin -----------------------------------------------------------------------------------


def test_admins_create_users_and_reset_passwords(web: FlaskClient) -> None:
    make_user("root", admin=True)
    bob = make_user("bob")
    bobs_browser = web.application.test_client()
    sign_in(bobs_browser, "bob")
    assert bobs_browser.get("/dashboard/users").status_code == 404  # not an admin

    sign_in(web, "root")
    page = web.post("/dashboard/users", data={"username": "carol", "password": "long enough pw"})
    assert page.status_code == 302
    assert manage.authenticate("carol", "long enough pw") is not None
    assert (
        web.post("/dashboard/users", data={"username": "carol", "password": "long enough pw"}).status_code
        == 409
    )
    assert web.post("/dashboard/users", data={"username": "dave", "password": "short"}).status_code == 400
    listing = web.get("/dashboard/users")
    assert "carol" in listing.text and "bob" in listing.text

    web.post(f"/dashboard/users/{bob.user.id}/password", data={"password": "brand new password"})
    assert manage.authenticate("bob", "brand new password") is not None
    assert bobs_browser.get("/dashboard/channels").status_code == 302  # the old session ended


# -- nothing a visitor sends is a 500 --------------------------------------------------------

PARAM_NAMES = [
    "range",
    "start",
    "end",
    "days",
    "minutes",
    "tz",
    "timezone",
    "width",
    "height",
    "pair",
    "since",
]


def test_odd_query_parameters_never_cause_a_server_error(web: FlaskClient) -> None:
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    owner = make_user()
    keys = make_channel(owner.user, public=True)
    write(keys.id, Entry({1: 1.0, 2: 2.0}))
    paths = [
        f"/dashboard/channels/{keys.id}",
        f"/dashboard/channels/{keys.id}/live",
        f"/dashboard/channels/{keys.id}/export.csv",
        f"/channels/{keys.id}/charts/1",
    ]

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(st.sampled_from(paths), st.dictionaries(st.sampled_from(PARAM_NAMES), st.text(max_size=30)))
    def check(path: str, params: dict[str, str]) -> None:
        response = web.get(path, query_string=params)
        assert response.status_code in (200, 400), (path, params, response.status_code)

    check()


def test_line_protocol_example_writes_to_the_channels_own_field(web: FlaskClient) -> None:
    """The Keys page's example names the channel as measurement, so it fills the field it shows."""
    import html
    import shlex

    owner = make_user()
    channel = manage.create_channel(owner.user, "garden shed", fields=["soil moisture", "air"])
    sign_in(web)
    page = web.post(f"/dashboard/channels/{channel.id}/keys", data={"kind": "write"})
    line = next(x for x in html.unescape(page.text).splitlines() if "/write?db=" in x and "curl" in x)
    words = shlex.split(line[line.index("curl") :])
    url, body = words[words.index("-X") + 2], words[words.index("--data-binary") + 1]
    assert body == "garden\\ shed air=21.5"  # "soil moisture" would read as a new field's name
    path = url.split("://", 1)[1].split("/", 1)[1]
    assert web.post("/" + path, data=body.encode()).status_code == 204
    assert [f.name for f in manage.find_channel(str(channel.id)).fields] == ["soil moisture", "air"]
    _, read_key = manage.create_key(owner.user, KeyKind.READ, channel=channel)
    last = web.get(f"/channels/{channel.id}/fields/2/last.txt", query_string={"api_key": read_key})
    assert last.get_data(as_text=True) == "21.5"


def test_behind_a_proxy_the_throttle_counts_the_forwarded_address(app: Flask) -> None:
    """PROXY_COUNT=1: clients behind one proxy (one socket address) are limited one by one."""
    from tests.conftest import make_app

    proxied = make_app(
        app.config["DATABASE_URL"], Path(app.instance_path), PROXY_COUNT=1, WTF_CSRF_ENABLED=False
    )
    make_user()
    web = proxied.test_client()
    proxy = {"REMOTE_ADDR": "10.0.0.1"}

    def attempt(client: str, password: str) -> int:
        data = {"username": "alice", "password": password}
        headers = {"X-Forwarded-For": client}
        return web.post("/dashboard/login", data=data, headers=headers, environ_base=proxy).status_code

    try:
        for _ in range(signin.NAME_FREE_TRIES):
            assert attempt("203.0.113.9", "guess") == 401
        assert attempt("203.0.113.9", PASSWORD) == 429
        assert attempt("198.51.100.7", PASSWORD) == 302  # another client of the same proxy
    finally:
        with proxied.app_context():
            db.session.remove()
            db.engine.dispose()


def test_keys_page_warns_that_a_loopback_address_is_not_the_devices_address(app: Flask) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    owner = make_user()
    channel = manage.create_channel(owner.user, "weather", fields=["temperature"])
    pages = {}
    for base in ("http://127.0.0.1:8000", "http://192.168.1.20:8000"):
        web = app.test_client()
        signed = web.post("/dashboard/login", data={"username": "alice", "password": PASSWORD}, base_url=base)
        assert signed.status_code == 302
        pages[base] = web.post(
            f"/dashboard/channels/{channel.id}/keys", data={"kind": "write"}, base_url=base
        ).text
    local, lan = pages.values()
    assert 'id="loopback-note"' in local and "HOST=0.0.0.0 make run" in local
    assert 'id="loopback-note"' not in lan and "http://192.168.1.20:8000/update" in lan
