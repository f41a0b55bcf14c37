"""params: the read API's parameter parsers; property tests show they only ever raise BadRequest."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldstation import params
from fieldstation.errors import BadRequest
from fieldstation.timeunits import MAX_TS_US, MIN_TS_US, US, datetime_to_us

NOW = 1_700_000_000 * US
H = 3600 * US


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("-1h", NOW - H),
        ("-24h", NOW - 24 * H),
        ("-7d", NOW - 7 * 24 * H),
        ("now", NOW),
        ("now-15m", NOW - 15 * 60 * US),
        ("now+1h", NOW + H),
        ("1700000000", NOW),
        ("1700000000000", NOW),
        ("2023-11-14T22:13:20Z", NOW),
        ("2023-11-14T23:13:20+01:00", NOW),
        ("2023-11-14 22:13:20", NOW),
    ],
)
def test_instants(raw: str, expected: int) -> None:
    assert params.parse_instant(raw, NOW) == expected


@pytest.mark.parametrize("raw", ["", "yesterday", "-1x", "--1h", "2023-13-01", "now-", "-0h", "1e400"])
def test_bad_instants(raw: str) -> None:
    with pytest.raises(BadRequest):
        params.parse_instant(raw, NOW)


def test_naive_times_are_in_the_request_zone() -> None:
    zone = dt.timezone(dt.timedelta(hours=2))
    assert params.parse_instant("2023-11-15 00:13:20", NOW, zone) == NOW


def test_windows() -> None:
    assert params.parse_window(None, None, now=NOW, default_span=H) == (NOW + 1 - H, NOW + 1)
    assert params.parse_window("-2h", "-1h", now=NOW, default_span=H) == (NOW - 2 * H, NOW - H)
    with pytest.raises(BadRequest, match="after end"):
        params.parse_window("-1h", "-2h", now=NOW, default_span=H)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1s", US),
        ("15m", 900 * US),
        ("1h30m", 5400 * US),
        ("7d", 7 * 24 * H),
        ("2w", 14 * 24 * H),
        ("250ms", US // 4),
    ],
)
def test_durations(raw: str, expected: int) -> None:
    assert params.parse_duration(raw) == expected


@given(st.integers(min_value=1, max_value=5000), st.sampled_from(["s", "m", "h", "d", "w", "ms", "us"]))
def test_duration_round_trip(number: int, unit: str) -> None:
    assert params.parse_duration(f"{number}{unit}") == number * params.UNITS[unit]


@given(st.text(max_size=40))
def test_parsers_only_raise_bad_request(raw: str) -> None:
    for parse in (
        lambda: params.parse_instant(raw, NOW),
        lambda: params.parse_duration(raw),
        lambda: params.parse_int(raw, "limit", default=1, low=1, high=8000),
        lambda: params.parse_fields([raw], [1, 2, 3]),
        lambda: params.parse_functions(raw),
        lambda: params.parse_order(raw),
        lambda: params.parse_cursor(raw),
        lambda: params.parse_bool(raw),
        lambda: params.parse_float_param(raw, "min"),
    ):
        try:
            parse()
        except BadRequest:
            pass


@given(
    st.datetimes(
        min_value=dt.datetime(1901, 1, 1), max_value=dt.datetime(2200, 1, 1), timezones=st.just(dt.UTC)
    )
)
def test_format_then_parse_is_identity(moment: dt.datetime) -> None:
    ts = datetime_to_us(moment)
    assert params.parse_instant(params.format_time(ts), NOW) == ts


def test_fields_functions_and_flags() -> None:
    assert params.parse_fields([], [1, 2]) == [1, 2]
    assert params.parse_fields(["2,field1", "2"], [1, 2]) == [2, 1]
    with pytest.raises(BadRequest, match="no field 9"):
        params.parse_fields(["9"], [1, 2])
    assert params.parse_functions("max,avg") == ["avg", "max"]
    assert params.parse_functions("p99.90,median,P5,p5.0,avg") == ["avg", "median", "p5", "p99.9"]
    with pytest.raises(BadRequest):
        params.parse_functions("mode")
    assert params.parse_bool("true") and not params.parse_bool("false") and not params.parse_bool(None)
    assert params.format_time(0) == "1970-01-01T00:00:00Z"
    assert params.format_time(1, seconds=True) == "1970-01-01T00:00:00Z"
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert params.format_time(0, berlin) == "1970-01-01T01:00:00+01:00"


def _isoformat(ts: int, seconds: bool) -> str:
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts)
    text = (moment.replace(microsecond=0) if seconds else moment).isoformat()
    return text.removesuffix("+00:00") + "Z"


@given(
    st.lists(
        st.one_of(
            st.integers(min_value=MIN_TS_US - 2 * H, max_value=MAX_TS_US + 2 * H),
            st.integers(min_value=0, max_value=10**5).map(lambda n: NOW + n * 60 * US),
            st.integers(min_value=-(10**6), max_value=10**6).map(lambda n: NOW + n * 997),
        ),
        max_size=40,
    ),
    st.booleans(),
)
def test_format_times_is_format_time_of_each(stamps: list[int], seconds: bool) -> None:
    """The batch formatter (hour prefixes shared) writes what datetime.isoformat writes, row by row."""
    for ordered in (stamps, sorted(stamps)):
        got = params.format_times(ordered, seconds=seconds)
        assert got == [params.format_time(ts, seconds=seconds) for ts in ordered]
        assert got == [_isoformat(ts, seconds) for ts in ordered]
    zone = dt.timezone(dt.timedelta(hours=5, minutes=30))
    inside = [ts for ts in stamps if MIN_TS_US <= ts <= MAX_TS_US]
    assert params.format_times(inside, zone) == [params.format_time(ts, zone) for ts in inside]
