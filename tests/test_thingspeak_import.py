"""Moving from ThingSpeak: its CSV export and channel settings in, the same data out (both engines).

The files are shaped as ThingSpeak writes them. The CSV export ("Export recent data" / the
channel's feeds.csv) has the header ``created_at,entry_id,field1,…`` and times like
``2026-12-05 01:00:00 UTC``; the settings are ThingSpeak's "Read Settings" answer
(``GET /channels/<id>.json?api_key=<user key>``), with ``metadata`` and ``tags``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from hypothesis import given
from hypothesis import strategies as st

from fieldstation import channelmeta, csvimport, export, manage
from fieldstation.models import KeyKind
from fieldstation.timeunits import MAX_TS_US, MIN_TS_US
from tests.factories import make_channel, make_user

START = dt.datetime(2025, 12, 5, tzinfo=dt.UTC)


def thingspeak_csv(path: Path, minutes: int) -> list[tuple[str, str, str]]:
    """A ThingSpeak export of one-minute readings of two fields; returns (time, field1, field2)."""
    rows = []
    with path.open("w", newline="") as out:
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["created_at", "entry_id", "field1", "field2"])
        for i in range(minutes):
            moment = START + dt.timedelta(minutes=i)
            temperature = f"{15 + (i % 977) / 100:.2f}".rstrip("0").rstrip(".")
            humidity = str(40 + i % 37)
            writer.writerow([f"{moment:%Y-%m-%d %H:%M:%S} UTC", i + 1, temperature, humidity])
            rows.append((f"{moment:%Y-%m-%dT%H:%M:%S}Z", temperature, humidity))
    return rows


def exported(channel_id: int) -> list[tuple[str, str, str]]:
    """The channel as the dashboard's download gives it: (time, field1, field2)."""
    channel = manage.find_channel(str(channel_id))
    text = "".join(export.channel_csv(channel.id, list(channel.fields), MIN_TS_US, MAX_TS_US))
    return [(r[0], r[2], r[3]) for r in list(csv.reader(io.StringIO(text)))[1:]]


@pytest.mark.slow
@pytest.mark.parametrize("engine_name", ["sqlite"])  # the small round trips below run on both engines
def test_a_year_of_minutes_imports_with_a_progress_bar_and_exports_the_same(
    runner: FlaskCliRunner, tmp_path: Path
) -> None:
    source = tmp_path / "feeds.csv"
    rows = thingspeak_csv(source, 365 * 24 * 60)
    owner = make_user("ts")
    keys = make_channel(owner.user, "garden", fields=("temperature", "humidity"))
    result = runner.invoke(args=["import", "csv", str(keys.id), str(source)])
    assert result.exit_code == 0, result.output
    assert "feeds.csv: checking, then writing" in result.output  # the progress bar's label
    assert f"imported {len(rows)} rows ({2 * len(rows)} readings)" in result.output
    assert exported(keys.id) == rows


def test_fieldstations_own_exports_round_trip(app: Flask, client: FlaskClient, tmp_path: Path) -> None:
    """ThingSpeak-format feeds.csv and the dashboard's download both import into an equal channel."""
    owner = make_user("ts")
    first = make_channel(owner.user, "a", fields=("temperature", "humidity"))
    rows = thingspeak_csv(tmp_path / "feeds.csv", 300)
    with (tmp_path / "feeds.csv").open("rb") as stream:
        report = csvimport.import_file(first.channel, stream, dt.UTC, skip_bad=False)
    assert report.imported == 300 and not report.errors
    feeds = client.get(
        f"/channels/{first.id}/feeds.csv", query_string={"api_key": first.read_key, "results": 8000}
    )
    assert feeds.get_data(as_text=True).splitlines()[1].startswith("2025-12-05 00:00:00 UTC,1,15,40")
    download = "".join(export.channel_csv(first.id, list(first.channel.fields), MIN_TS_US, MAX_TS_US))
    for name, body in (("b", feeds.get_data()), ("c", download.encode())):
        again = make_channel(owner.user, name, fields=("temperature", "humidity"))
        report = csvimport.import_file(again.channel, io.BytesIO(body), dt.UTC, skip_bad=False)
        assert report.imported == 300 and not report.errors, report.fatal
        assert exported(again.id) == rows


def test_bad_rows_are_reported_by_line_and_nothing_is_written(app: Flask) -> None:
    keys = make_channel(make_user("ts").user, "a", fields=("temperature", "humidity"))
    body = (
        "created_at,entry_id,field1,field2\n"
        "2026-12-05 01:00:00 UTC,1,20.5,40\n"
        "2026-12-05 01:01:00 UTC,2,20.6,41,surplus\n"
        '2026-12-05 01:02:00 UTC,3,"multi\nline",42\n'
        "2026-12-05 01:03:00 UTX,4,20.8,43\n"
        "2026-12-05 01:04:00 +0100,5,20.9,44\n"
    )
    report = csvimport.import_file(keys.channel, io.BytesIO(body.encode()), dt.UTC, skip_bad=False)
    assert report.imported == 0 and report.bad_rows == 2
    assert [line for line, _ in report.errors] == [3, 6]
    assert report.errors[0][1] == "the row has 5 columns, the first row names 4"
    assert exported(keys.id) == []
    report = csvimport.import_file(keys.channel, io.BytesIO(body.encode()), dt.UTC, skip_bad=True)
    assert report.imported == 3
    times = [row[0] for row in exported(keys.id)]
    assert times == ["2026-12-05T00:04:00Z", "2026-12-05T01:00:00Z", "2026-12-05T01:02:00Z"]


SETTINGS = {
    "id": 9876,
    "name": "Backyard station",
    "description": "ESP32 by the greenhouse",
    "latitude": "52.52",
    "longitude": "13.405",
    "field1": "Temperature",
    "field3": "Soil moisture",
    "created_at": "2019-03-01T10:00:00Z",
    "updated_at": "2026-11-30T08:00:00Z",
    "elevation": "34",
    "last_entry_id": 3,
    "public_flag": False,
    "url": None,
    "ranking": 70,
    "metadata": '{"firmware": "1.4.2"}',
    "license_id": 0,
    "github_url": None,
    "tags": [{"id": 101, "name": "garden"}, {"id": 102, "name": "esp32"}],
    "api_keys": [{"api_key": "XXXXXXXXXXXXXXXX", "write_flag": True}],
}


def test_import_thingspeak_makes_the_channel_with_fields_units_and_metadata(
    runner: FlaskCliRunner, client: FlaskClient, tmp_path: Path
) -> None:
    make_user("ts")
    (tmp_path / "settings.json").write_text(json.dumps(SETTINGS))
    (tmp_path / "feeds.csv").write_text(
        "created_at,entry_id,field1,field3,latitude,longitude,elevation,status\n"
        "2026-12-05 01:00:00 UTC,1,20.5,31,,,,\n"
        "2026-12-05 01:01:00 UTC,2,20.75,32,,,,watered\n"
        "2026-12-05 01:02:00 UTC,3,,33,,,,\n"
    )
    result = runner.invoke(
        args=["import", "thingspeak", str(tmp_path / "feeds.csv"), str(tmp_path / "settings.json"),
              "--owner", "ts", "--unit", "1:°C", "--unit", "3:%"]
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    channel = manage.find_channel("Backyard station")
    assert [(f.number, f.name, f.unit) for f in channel.fields] == [
        (1, "Temperature", "°C"),
        (3, "Soil moisture", "%"),
    ]
    assert (channel.description, channel.latitude, channel.longitude, channel.elevation) == (
        "ESP32 by the greenhouse",
        52.52,
        13.405,
        34.0,
    )
    _, read_key = manage.create_key(channel.owner, KeyKind.READ, channel=channel)
    view = client.get(f"/channels/{channel.id}.json", query_string={"api_key": read_key}).get_json()
    assert view["metadata"] == '{"firmware": "1.4.2"}'
    assert [t["name"] for t in view["tags"]] == ["garden", "esp32"]
    feeds = client.get(
        f"/channels/{channel.id}/feeds.json",
        query_string={"api_key": read_key, "metadata": "true", "status": "true"},
    ).get_json()
    assert feeds["channel"]["metadata"] == '{"firmware": "1.4.2"}'
    assert [(f["field1"], f["field3"], f["status"]) for f in feeds["feeds"]] == [
        ("20.5", "31", None),
        ("20.75", "32", "watered"),
        (None, "33", None),
    ]


def test_metadata_pairs_read_with_a_read_key_written_with_the_write_or_owner_key(
    app: Flask, client: FlaskClient
) -> None:
    owner = make_user("ts")
    keys = make_channel(owner.user, "a")
    url = f"/api/v1/channels/{keys.id}/metadata"
    assert client.get(url).status_code == 404  # private, no key
    device = {"Authorization": f"Bearer {keys.write_key}"}
    written = client.patch(
        url, json={"pairs": {"firmware": "1.4.2", "calibrated": {"on": "2026-11-01"}}}, headers=device
    )
    assert written.status_code == 200, written.get_json()
    assert (
        client.patch(url, json={"pairs": {"x": 1}}, query_string={"api_key": keys.read_key}).status_code
        == 404
    )
    got = client.get(url, query_string={"api_key": keys.read_key}).get_json()
    assert got["pairs"] == {"firmware": "1.4.2", "calibrated": {"on": "2026-11-01"}}
    changed = client.patch(url, json={"pairs": {"firmware": None}, "tags": "a, b"}, headers=owner.headers)
    assert changed.get_json()["pairs"] == {"calibrated": {"on": "2026-11-01"}} and changed.get_json()[
        "tags"
    ] == ["a", "b"]
    too_big = client.patch(url, json={"pairs": {"blob": "x" * 20_000}}, headers=owner.headers)
    assert too_big.status_code == 400
    assert channelmeta.read(keys.id).pairs == {"calibrated": {"on": "2026-11-01"}}
    patched = client.patch(f"/api/v1/channels/{keys.id}", json={"metadata": "<xml/>"}, headers=owner.headers)
    assert patched.status_code == 200
    assert client.get(url, headers=owner.headers).get_json()["metadata"] == "<xml/>"
    other = make_user("eve")
    assert client.get(url, headers=other.headers).status_code == 404


def test_csv_import_over_the_api_and_metadata_from_the_cli(
    app: Flask, client: FlaskClient, runner: FlaskCliRunner
) -> None:
    owner = make_user("ts")
    keys = make_channel(owner.user, "a", fields=("temperature", "humidity"))
    url = f"/api/v1/channels/{keys.id}/import.csv"
    body = (
        "created_at,entry_id,field1,field2\n"
        "2026-12-05 01:00:00 UTC,1,20.5,40\n"
        "2026-12-05 01:01:00 UTC,2,x,41,9\n"
    )
    refused = client.post(url, data=body, headers={**owner.headers, "Content-Type": "text/csv"})
    assert refused.status_code == 400
    assert refused.get_json()["errors"] == [
        {"line": 3, "message": "the row has 5 columns, the first row names 4"}
    ]
    done = client.post(url, data=body, headers=owner.headers, query_string={"skip_bad": "true"})
    assert done.status_code == 200 and done.get_json()["imported"] == 1
    assert client.post(url, data=body, headers=make_user("eve").headers).status_code == 404

    calibrated = json.dumps({"on": "2026-11-01"})
    shown = runner.invoke(
        args=["channel", "meta", "a", "--set", "firmware=1.4.2-beta", "--set", 'serial="0042"',
              "--set", f"calibrated={calibrated}", "--tags", "garden,esp32"]
    )  # fmt: skip
    assert shown.exit_code == 0, shown.output
    assert 'firmware = "1.4.2-beta"' in shown.output and 'serial = "0042"' in shown.output
    assert channelmeta.read(keys.id).tags == ["garden", "esp32"]
    assert runner.invoke(args=["channel", "meta", "a", "--unset", "serial"]).exit_code == 0
    assert set(channelmeta.read(keys.id).pairs) == {"firmware", "calibrated"}
    too_long = runner.invoke(args=["channel", "meta", "a", "--set", "k" * 65 + "=1"])
    assert too_long.exit_code == 1 and too_long.output.startswith("Error: a key is 1-64 characters")


def test_dashboard_channel_form_keeps_metadata(app: Flask) -> None:
    from tests.test_dashboard import sign_in

    owner = make_user("alice")
    keys = make_channel(owner.user, "a")
    app.config["WTF_CSRF_ENABLED"] = False  # as test_dashboard's client
    web = app.test_client()
    sign_in(web)
    form = web.get(f"/dashboard/channels/{keys.id}/edit").get_data(as_text=True)
    assert 'name="pairs"' in form and 'name="tags"' in form and 'name="metadata"' in form
    data = {"name": "a", "description": "", "fields-0-number": "1", "fields-0-name": "temperature",
            "fields-1-number": "2", "fields-1-name": "humidity", "tags": "garden, shed",
            "pairs": '{"firmware": "2.0", "offset": -0.5}', "metadata": "<calibration/>"}  # fmt: skip
    saved = web.post(f"/dashboard/channels/{keys.id}/edit", data=data)
    assert saved.status_code == 302, saved.get_data(as_text=True)[:2000]
    meta = channelmeta.read(keys.id)
    assert (meta.tags, meta.pairs, meta.metadata) == (
        ["garden", "shed"],
        {"firmware": "2.0", "offset": -0.5},
        "<calibration/>",
    )
    bad = web.post(
        f"/dashboard/channels/{keys.id}/edit", data={**data, "pairs": "[1, 2]", "description": "changed"}
    )
    assert bad.status_code == 400 and "must be a JSON object" in bad.get_data(as_text=True)
    assert manage.find_channel(str(keys.id)).description == ""  # nothing of the refused form was kept


@given(st.text(max_size=20))
def test_formula_guard_round_trips_and_never_starts_a_formula(text: str) -> None:
    from fieldstation.points import FORMULA_STARTS, guard_text, unguard_text

    guarded = guard_text(text)
    assert not guarded.startswith(FORMULA_STARTS)
    assert unguard_text(guarded) == text


def test_text_cells_download_guarded_and_import_back_unchanged(app: Flask) -> None:
    keys = make_channel(make_user("ts").user, "a", fields=("note", "level"))
    body = (
        "time,note,level,status\n"
        '2026-12-05T01:00:00Z,"=HYPERLINK(""http://x"")",1,+cmd\n'
        "2026-12-05T01:01:00Z,@SUM(A1),-2,'=quoted\n"
    )
    assert (
        csvimport.import_file(keys.channel, io.BytesIO(body.encode()), dt.UTC, skip_bad=False).imported == 2
    )
    download = "".join(export.channel_csv(keys.id, list(keys.channel.fields), MIN_TS_US, MAX_TS_US))
    rows = list(csv.reader(io.StringIO(download)))[1:]
    assert [(r[2], r[3], r[4]) for r in rows] == [
        ('\'=HYPERLINK("http://x")', "1", "'+cmd"),
        ("'@SUM(A1)", "-2", "'=quoted"),  # an imported "'=" was a guard,
    ]
    again = make_channel(make_user("tt").user, "b", fields=("note", "level"))
    assert (
        csvimport.import_file(again.channel, io.BytesIO(download.encode()), dt.UTC, skip_bad=False).imported
        == 2
    )
    second = "".join(export.channel_csv(again.id, list(again.channel.fields), MIN_TS_US, MAX_TS_US))
    assert [(r[0], *r[2:]) for r in csv.reader(io.StringIO(second))] == [
        (r[0], *r[2:]) for r in csv.reader(io.StringIO(download))
    ]
