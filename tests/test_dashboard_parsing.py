"""The dashboard's parsers of user input: time windows, zones and CSV uploads (hypothesis)."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fieldstation.dashboard import csvio, ranges
from fieldstation.errors import BadRequest
from fieldstation.models import Channel, Field
from fieldstation.timeunits import US

NOW = 1_795_000_000 * US


def test_presets_end_now_and_default_to_a_day() -> None:
    assert ranges.window({"range": "7d"}, dt.UTC, now=NOW) == ranges.Window(NOW - 7 * ranges.DAY, NOW, "7d")
    assert ranges.window({}, dt.UTC, now=NOW).preset == "24h"
    assert ranges.window({"days": "1.5"}, dt.UTC, now=NOW).start == NOW - 36 * ranges.HOUR
    assert ranges.window({"minutes": "90"}, dt.UTC, now=NOW).start == NOW - 90 * 60 * US


def test_custom_range_reads_naive_times_in_the_viewer_zone() -> None:
    tokyo = ranges.viewer_zone({}, {"fs_tz": "Asia%2FTokyo"})
    win = ranges.window({"start": "2026-01-01T09:00", "end": "2026-01-01T10:00"}, tokyo, now=NOW)
    assert win.start == int(dt.datetime(2026, 1, 1, tzinfo=dt.UTC).timestamp()) * US
    assert win.end - win.start == ranges.HOUR and win.preset is None
    assert win.query() == {"start": str(win.start), "end": str(win.end)}


def test_zone_precedence_and_bad_cookies() -> None:
    assert ranges.viewer_zone({"tz": "Europe/Berlin"}, {"fs_tz": "Asia%2FTokyo"}).key == "Europe/Berlin"  # type: ignore[attr-defined]
    assert ranges.viewer_zone({}, {"fs_tz": "Not/AZone"}) is dt.UTC  # a bad cookie is ignored
    assert ranges.viewer_zone({}, {}) is dt.UTC
    with pytest.raises(BadRequest):
        ranges.viewer_zone({"tz": "Not/AZone"}, {})


@given(st.dictionaries(st.sampled_from(["range", "start", "end", "days", "minutes"]), st.text(max_size=40)))
def test_any_window_parameters_give_a_window_or_a_bad_request(args: dict[str, str]) -> None:
    try:
        win = ranges.window(args, dt.UTC, now=NOW)
    except BadRequest:
        return
    assert win.start < win.end
    assert win.end - win.start <= ranges.MAX_SPAN


@given(st.text(max_size=8), st.text(max_size=8))
def test_chart_sizes_stay_in_bounds(width: str, height: str) -> None:
    assert 240 <= ranges.chart_width({"width": width}, {"fs_w": width}) <= 4000
    assert 120 <= ranges.chart_height({"height": height}) <= 2000


# -- CSV upload ------------------------------------------------------------------------------


def channel() -> Channel:
    return Channel(id=1, name="c", fields=[Field(number=1, name="temperature"), Field(number=2, name="rh")])


def parse(text: str) -> tuple[list[object], csvio.ImportReport]:
    report = csvio.ImportReport()
    entries = csvio._parse(channel(), csv.reader(io.StringIO(text)), dt.UTC, report)
    return list(entries), report


@given(st.text(max_size=300))
def test_any_upload_is_parsed_or_reported_never_raised(text: str) -> None:
    try:
        entries, report = parse(text)
    except csv.Error:
        return  # import_file reports these as an unreadable file
    assert report.fatal is not None or report.rows == len(entries) + report.bad_rows


@given(
    st.lists(
        st.tuples(
            st.integers(0, 10**9), st.floats(-1e9, 1e9, allow_nan=False), st.sampled_from(["", 'ok, "x"'])
        ),
        max_size=20,
    )
)
def test_well_formed_rows_all_import(rows: list[tuple[int, float, str]]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["time", "field1", "status"])
    for ts, value, status in rows:
        writer.writerow([ts, repr(value), status])
    entries, report = parse(buffer.getvalue())
    assert report.fatal is None and report.bad_rows == 0
    assert [e.values[1] for e in entries] == [v for _, v, _ in rows]  # type: ignore[attr-defined]
    assert [e.status for e in entries] == [s or None for _, _, s in rows]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("temperature,rh", "time column"),
        ("time,pressure", "not fields of this channel: pressure"),
        ("time,status", "no column names a field"),
        ("", "time column"),
    ],
)
def test_bad_headers_refuse_the_whole_file(header: str, message: str) -> None:
    _, report = parse(header + "\n1,2\n")
    assert report.fatal is not None and message in report.fatal
