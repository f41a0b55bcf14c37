"""Parsing of timestamps, values and device ids: tables of examples plus properties."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldstation.errors import BadRequest
from fieldstation.points import (
    epoch_to_us,
    get_zone,
    normalize_device,
    parse_float,
    parse_time,
    parse_value,
)
from fieldstation.timeunits import MAX_TS_US, MIN_TS_US, datetime_to_us, us_to_datetime

T0 = 1_577_836_800_000_000  # 2020-01-01T00:00:00Z in µs


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("2020-01-01T00:00:00Z", T0),
        ("2020-01-01T01:00:00+01:00", T0),
        ("2020-01-01 00:00:00", T0),
        ("2020-01-01T00:00:00.123456Z", T0 + 123_456),
        ("1577836800", T0),
        ("1577836800.5", T0 + 500_000),
        ("1577836800000", T0),
        ("1577836800000000", T0),
        ("1577836800000000000", T0),
        (1577836800, T0),
        (1577836800.25, T0 + 250_000),
    ],
)
def test_parse_time(raw: str | int | float, expected: int) -> None:
    assert parse_time(raw) == expected


def test_naive_time_uses_zone() -> None:
    assert parse_time("2020-01-01 01:00:00", get_zone("Europe/Berlin")) == T0


@pytest.mark.parametrize(
    "raw", ["", "yesterday", "2020-13-01", "1e400", "nan", "99999999999999999999999", True]
)
def test_parse_time_rejects(raw: object) -> None:
    with pytest.raises(BadRequest):
        parse_time(raw)  # type: ignore[arg-type]


def test_epoch_units() -> None:
    assert epoch_to_us("1577836800", "s") == T0
    assert epoch_to_us("1577836800123", "ms") == T0 + 123_000
    assert epoch_to_us("1577836800123456789", "ns") == T0 + 123_456
    with pytest.raises(BadRequest):
        epoch_to_us("1", "fortnights")


@pytest.mark.parametrize("name", ["Mars/Olympus", "America", "Etc", "a" * 300, "../../etc/passwd", "UTC\x00"])
def test_unknown_zone(name: str) -> None:
    """Folders of the zone database and names too long for a file name are unknown zones too."""
    with pytest.raises(BadRequest, match="time zone"):
        get_zone(name)


@given(st.text(max_size=300))
def test_any_zone_name_resolves_or_is_a_bad_request(name: str) -> None:
    try:
        zone: object = get_zone(name)
    except BadRequest as exc:
        zone = exc.code
    assert isinstance(zone, dt.tzinfo) or zone == "bad_timezone"


@given(
    st.datetimes(
        min_value=dt.datetime(1900, 1, 1),
        max_value=dt.datetime(2262, 1, 1),
        timezones=st.just(dt.UTC),
    )
)
def test_iso_round_trip(moment: dt.datetime) -> None:
    us = parse_time(moment.isoformat())
    assert us_to_datetime(us) == moment
    assert datetime_to_us(moment) == us


@given(st.text(max_size=40))
def test_parse_time_never_crashes(raw: str) -> None:
    try:
        us = parse_time(raw)
    except BadRequest:
        return
    assert MIN_TS_US <= us <= MAX_TS_US


@given(st.one_of(st.floats(), st.integers(), st.text(max_size=300), st.booleans(), st.none()))
def test_parse_value_is_finite_or_short_text(raw: object) -> None:
    try:
        value = parse_value(raw)
    except BadRequest:
        return
    if isinstance(value, float):
        assert math.isfinite(value)
    else:
        assert isinstance(value, str) and len(value) <= 255


@pytest.mark.parametrize("raw", ["nan", "inf", "-Infinity", float("nan")])
def test_non_finite_values_refused(raw: object) -> None:
    with pytest.raises(BadRequest):
        parse_value(raw)


def test_device_ids() -> None:
    assert normalize_device("6c:rf:7f:2B:0e:g8") == "6c:rf:7f:2b:0e:g8"
    for bad in ["", "a b", "x" * 65, "mac;drop"]:
        with pytest.raises(BadRequest):
            normalize_device(bad)


def test_integers_beyond_the_float_range_are_refused() -> None:
    """JSON allows integers of any size; float() overflows on them (that was a 500)."""
    with pytest.raises(BadRequest, match="finite"):
        parse_value(10**400)
    with pytest.raises(BadRequest, match="finite"):
        parse_float(-(10**400), "latitude")


@given(
    st.one_of(
        st.integers(-(10**20), 10**20),
        st.sampled_from([10**k + d for k in (11, 14, 17, 19) for d in (-1, 0, 1)] + [99_999_999_999_999_999]),
    )
)
def test_integer_epochs_land_where_their_text_does(number: int) -> None:
    """Integers (the usual JSON time) skip the Decimal round trip of the text path (#3)."""

    def outcome(raw: int | str) -> int | str:
        try:
            return epoch_to_us(raw)
        except BadRequest as exc:
            return exc.message

    assert outcome(number) == outcome(str(number))
