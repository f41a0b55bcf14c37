"""Calibration and computed fields: applied as readings are stored, by every way in, on both engines."""

from __future__ import annotations

import datetime as dt
import io
import math

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st

from fieldstation import derive, manage, query, store
from fieldstation.dashboard import csvio
from fieldstation.errors import BadRequest
from fieldstation.points import Batch, Entry
from fieldstation.timeunits import SECOND
from tests.factories import PASSWORD, Account, ChannelKeys

T0 = 1_780_000_000 * SECOND

pytestmark = pytest.mark.channel(name="meter", fields=["voltage", "current", "power"])


def stored(channel: ChannelKeys, number: int) -> list[float | str]:
    found = query.field_of(channel.id, number)
    assert found is not None
    return [p.value if p.value is not None else p.text for p in query.series(found.id, 0, 2**62, limit=100)]  # type: ignore[misc]


def patch(client: FlaskClient, owner: Account, channel: ChannelKeys, number: int, body: dict[str, object]):  # type: ignore[no-untyped-def]
    return client.patch(f"/api/v1/channels/{channel.id}/fields/{number}", json=body, headers=owner.headers)


def test_calibration_applies_to_new_readings_by_every_path(
    client: FlaskClient, owner: Account, channel: ChannelKeys
) -> None:
    assert client.get(f"/update?api_key={channel.write_key}&field1=230").status_code == 200
    response = patch(client, owner, channel, 1, {"cal_scale": 2.0, "cal_offset": -0.4})
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["cal_scale"] == 2.0
    # the single-reading lane (fused into one statement on PostgreSQL) and a batch
    assert client.get(f"/update?api_key={channel.write_key}&field1=10&field2=3").status_code == 200
    store.write(Batch(channel.id, [Entry({1: 1.0}, ts=T0), Entry({1: "open"}, ts=T0 + SECOND)]))
    store.write(Batch.of_series(channel.id, [T0 + 2 * SECOND], {1: {T0 + 2 * SECOND: 5.0}}))
    assert stored(channel, 1) == [pytest.approx(1.6), "open", pytest.approx(9.6), 230.0, pytest.approx(19.6)]
    assert stored(channel, 2) == [3.0]  # other fields as they come
    history = client.get(
        f"/api/v1/channels/{channel.id}/fields/1/calibrations", headers=owner.headers
    ).get_json()
    assert [(h["cal_scale"], h["cal_offset"]) for h in history] == [(2.0, -0.4)]
    # the change's time separates the readings it touched from those before it
    newest = query.latest_values(channel.id)[1].ts
    assert history[0]["since_us"] < newest
    assert patch(client, owner, channel, 1, {"cal_scale": None, "cal_offset": None}).status_code == 200
    assert client.get(f"/update?api_key={channel.write_key}&field1=7").status_code == 200
    assert stored(channel, 1)[-1] == 7.0
    history = client.get(
        f"/api/v1/channels/{channel.id}/fields/1/calibrations", headers=owner.headers
    ).get_json()
    assert [(h["cal_scale"], h["cal_offset"]) for h in history] == [(2.0, -0.4), (None, None)]


def test_bad_calibration_is_refused(client: FlaskClient, owner: Account, channel: ChannelKeys) -> None:
    for body in ({"cal_scale": 0}, {"cal_offset": 1e300}, {"cal_scale": "x"}):
        assert patch(client, owner, channel, 1, body).status_code == 400, body


def test_computed_field_from_voltage_and_current(
    client: FlaskClient, owner: Account, channel: ChannelKeys
) -> None:
    response = patch(
        client, owner, channel, 3, {"expression": "voltage * current", "unit": "W", "kind": "power"}
    )
    assert response.status_code == 200, response.get_json()
    assert client.get(f"/update?api_key={channel.write_key}&field1=230&field2=2").status_code == 200
    assert client.get(f"/update?api_key={channel.write_key}&field1=231").status_code == 200  # no current
    store.write(Batch.of_series(channel.id, [T0], {1: {T0: 100.0}, 2: {T0: 0.5}}))  # line protocol's form
    store.write(Batch(channel.id, [Entry({1: 1.0, 2: 1.0, 3: 99.0}, ts=T0 + SECOND)]))  # given: kept
    assert stored(channel, 3) == [50.0, 99.0, 460.0]


def test_a_division_by_zero_stores_no_value_and_the_write_succeeds(
    client: FlaskClient, owner: Account, channel: ChannelKeys
) -> None:
    assert patch(client, owner, channel, 3, {"expression": "field1 / field2"}).status_code == 200
    assert client.get(f"/update?api_key={channel.write_key}&field1=5&field2=0").status_code == 200
    assert client.get(f"/update?api_key={channel.write_key}&field1=5&field2=2").status_code == 200
    assert client.get(f"/update?api_key={channel.write_key}&field1=5&field2=hello").status_code == 200
    assert stored(channel, 3) == [2.5]
    assert stored(channel, 1) == [5.0, 5.0, 5.0]


@pytest.mark.parametrize(
    ("expression", "reason"),
    [
        ("voltage *", "invalid syntax"),
        ("volts * current", "no input field named 'volts'"),
        ("__import__('os').system('true')", "only the named functions"),
        ("__import__('os')", "no input field named '__import__'"),
        ("voltage.real", "Attribute is not allowed"),
        ("[voltage][0]", "is not allowed"),
        ("power * 2", "no input field named 'power'"),
        ("'a' * (voltage > 0)", "must be a number"),
        ("2 + 3", "uses no input field"),
        ("open('x')", "no input field named 'open'"),
    ],
)
def test_bad_expressions_are_refused_with_the_reason(
    client: FlaskClient, owner: Account, channel: ChannelKeys, expression: str, reason: str
) -> None:
    response = patch(client, owner, channel, 3, {"expression": expression})
    assert response.status_code == 400
    assert reason in response.get_json()["error"]["message"]
    assert manage.get_field(channel.channel, 3).expression is None


def test_csv_import_stores_values_as_given_and_computes_missing_fields(
    owner: Account, channel: ChannelKeys
) -> None:
    manage.update_field(manage.get_field(channel.channel, 1), cal_scale=10.0)
    manage.update_field(manage.get_field(channel.channel, 3), expression="voltage * current")
    body = b"created_at,voltage,current\n2026-05-28T12:00:00Z,230,2\n"
    report = csvio.import_file(channel.channel, io.BytesIO(body), dt.UTC, skip_bad=False)
    assert report.imported == 1
    assert stored(channel, 1) == [230.0]
    assert stored(channel, 3) == [460.0]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_any_expression_is_refused_cleanly_or_evaluates_without_raising(text: str) -> None:
    rules = [derive.FieldRule(1, "voltage"), derive.FieldRule(2, "current"), derive.FieldRule(3, "p")]
    try:
        checked = derive.check_expression(text, rules[:2])
    except BadRequest:
        return
    made = derive.Rules.of([*rules[:2], derive.FieldRule(3, "p", expression=checked)])
    for inputs in ({1: 2.0, 2: 0.0}, {1: -1e308, 2: 1e-308}, {1: "x", 2: 1.0}, {1: 1.0}):
        out = derive.apply(Batch(1, [Entry(inputs, ts=1)]), made).entries[0].values
        assert 3 not in out or (isinstance(out[3], float) and math.isfinite(out[3]))


@given(
    st.text(alphabet="0123456789+-*/(). voltagecurrent", max_size=30),
    st.floats(-1e6, 1e6),
    st.floats(-1e6, 1e6),
)
def test_arithmetic_expressions_agree_with_python(text: str, voltage: float, current: float) -> None:
    """Where Python's own arithmetic gives a finite number, the computed field stores that number."""
    rules = [derive.FieldRule(1, "voltage"), derive.FieldRule(2, "current")]
    try:
        checked = derive.check_expression(text, rules)
        expected = eval(checked, {"__builtins__": {}}, {"voltage": voltage, "current": current})  # noqa: S307
    except BadRequest:
        return
    except Exception:  # noqa: BLE001 - Python fails too: the field must store nothing
        expected = None
    made = derive.Rules.of([*rules, derive.FieldRule(3, "p", expression=checked)])
    out = derive.apply(Batch(1, [Entry({1: voltage, 2: current}, ts=1)]), made).entries[0].values
    if isinstance(expected, int | float) and not isinstance(expected, bool) and math.isfinite(expected):
        assert out.get(3) == pytest.approx(float(expected))
    else:
        assert 3 not in out


def test_the_dashboard_field_editor_sets_kind_calibration_and_expression(
    app: Flask, owner: Account, channel: ChannelKeys
) -> None:
    app.config["WTF_CSRF_ENABLED"] = False
    web = app.test_client()
    assert web.post("/dashboard/login", data={"username": "alice", "password": PASSWORD}).status_code == 302
    rows = {
        "name": "meter",
        "fields-0-number": "1",
        "fields-0-name": "voltage",
        "fields-0-unit": "V",
        "fields-0-offset": "-0.5",
        "fields-1-number": "2",
        "fields-1-name": "current",
        "fields-1-scale": "0.99",
        "fields-2-number": "3",
        "fields-2-name": "power",
        "fields-2-unit": "W",
        "fields-2-kind": "power",
        "fields-2-expression": "voltage * current",
    }
    bad = web.post(f"/dashboard/channels/{channel.id}/edit", data=rows | {"fields-2-expression": "volts * 2"})
    assert bad.status_code == 400 and "no input field named" in bad.text
    assert not any(f.expression or f.cal_offset for f in manage.channel_for(owner.user, channel.id).fields)
    assert web.post(f"/dashboard/channels/{channel.id}/edit", data=rows).status_code == 302
    edit = web.get(f"/dashboard/channels/{channel.id}/edit").text
    assert 'value="voltage * current"' in edit and 'value="0.99"' in edit
    assert client_update(web, channel, "field1=230.5&field2=2")
    assert stored(channel, 1) == [230.0] and stored(channel, 3) == [pytest.approx(230.0 * 1.98)]
    assert manage.get_field(manage.channel_for(owner.user, channel.id), 3).kind == "power"


def client_update(client: FlaskClient, channel: ChannelKeys, values: str) -> bool:
    return client.get(f"/update?api_key={channel.write_key}&{values}").status_code == 200


def test_the_cli_sets_and_clears_a_calibration(app: Flask, channel: ChannelKeys) -> None:
    runner = app.test_cli_runner()
    result = runner.invoke(
        args=["channel", "field", "meter", "1", "--scale", "2", "--offset", "1", "--kind", "power"]
    )
    assert result.exit_code == 0, result.output
    assert "value * 2 + 1" in result.output
    store.write(Batch(channel.id, [Entry({1: 10.0}, ts=T0)]))
    assert stored(channel, 1) == [21.0]
    assert "power, value * 2 + 1" in runner.invoke(args=["channel", "show", "meter"]).output
    result = runner.invoke(args=["channel", "field", "meter", "3", "--expression", "voltage *"])
    assert result.exit_code != 0 and "invalid syntax" in result.output
    assert runner.invoke(args=["channel", "field", "meter", "1", "--no-calibration"]).exit_code == 0
    store.write(Batch(channel.id, [Entry({1: 10.0}, ts=T0 + SECOND)]))
    assert stored(channel, 1) == [21.0, 10.0]


def test_the_worked_example_of_docs_energy(channel: ChannelKeys) -> None:
    """230 V and a clamp reading 1 % high: about 1,000 W for 90 minutes, in Wh per hour."""
    from fieldstation.energy import totals
    from fieldstation.timeunits import HOUR, MINUTE

    meter = channel.channel
    manage.update_field(manage.get_field(meter, 2), unit="A", cal_scale=0.99)
    manage.update_field(manage.get_field(meter, 3), unit="W", kind="power", expression="voltage * current")
    eight = T0 - T0 % HOUR
    entries = [Entry({1: 230.0, 2: 4.4}, ts=eight + i * MINUTE) for i in range(90)]
    store.write(Batch(channel.id, [*entries, Entry({1: 230.0, 2: 0.0}, ts=eight + 90 * MINUTE)]))
    assert stored(channel, 3)[:2] == [pytest.approx(1001.88)] * 2
    power = manage.get_field(meter, 3).id
    hourly = [t.energy for t in totals(power, eight, eight + 2 * HOUR, HOUR)]
    assert hourly == [pytest.approx(1001.88), pytest.approx(500.94)]
