"""GROUP BY time() offsets, tz() buckets and first()/last() over several series, against InfluxDB 1.6.

The same points go to a real InfluxDB 1.6 and to a channel (tests/influxdiff.py); every query
must get the same JSON answer. Six days of readings every ten minutes reach the rollups'
minute, hour and day slots, so offsets that do and do not fall on slot edges are both read.
"""

from __future__ import annotations

import pytest

from tests.influxdiff import Twin, twin  # noqa: F401  (the fixture)
from tests.test_influxql_differential import POINTS, WINDOW

pytestmark = pytest.mark.parametrize("engine_name", ["sqlite", "postgresql"], indirect=True)

DAY_S = 86_400
#: Six days across Europe's spring change (2020-03-29 01:00 UTC) or its autumn change (2020-10-25).
SEASONS = {"spring": 1_585_180_800, "autumn": 1_603_324_800}
DAYS = 6


def _days(t0: int) -> str:
    """Two series of a slow sensor, a reading every ten minutes (a gap in one of them)."""
    lines = []
    for i in range(DAYS * DAY_S // 600):
        ts = t0 + 600 * i
        lines.append(f"w,site=north t={round(5 + (i * 7919 % 113) / 10, 1)} {ts}")
        if not 300 <= i < 420:
            lines.append(f"w,site=south t={round(9 - (i * 104729 % 97) / 10, 1)} {ts + 300}")
    return "\n".join(lines)


OFFSETS = [
    "time(1h, 15m)",
    "time(1h, -15m)",
    "time(10m, 75m)",  # larger than the interval: modulo it
    "time(30m, -67m)",
    "time(10m, 15m + 1m)",
    "time(1h, 30m * 2)",
    "time(1h, 15m / 0)",
    "time(10m, 10m - -5m)",
]


def test_offsets_move_buckets_as_influxdb(twin: Twin) -> None:  # noqa: F811
    twin.write(POINTS, precision="ms")
    for group in OFFSETS:
        for fill in ("null", "none", "previous", "linear", "-1"):
            twin.compare(
                f"SELECT mean(temperature), count(humidity) FROM climate WHERE room = 'cellar' AND {WINDOW}"
                f" GROUP BY {group} fill({fill})"
            )
    twin.compare(
        f"SELECT max(temperature) FROM climate WHERE {WINDOW} GROUP BY time(1h, 20m), room ORDER BY time DESC"
    )
    twin.compare(
        f"SELECT median(humidity), spread(count) FROM climate WHERE {WINDOW} GROUP BY time(1h, -10m)"
    )
    twin.compare(
        f"SELECT derivative(mean(temperature)) FROM climate WHERE room = 'lab' AND {WINDOW}"
        " GROUP BY time(10m, 3m)"
    )


@pytest.mark.parametrize("season", sorted(SEASONS))
@pytest.mark.parametrize("zone", [None, "Europe/Berlin", "Asia/Kolkata", "America/St_Johns"])
def test_offsets_and_zones_over_rollup_slots_as_influxdb(twin: Twin, zone: str | None, season: str) -> None:  # noqa: F811
    """Day, hour and minute slots, and raw readings where an edge is off every slot, with tz() (and
    across a DST change, where InfluxDB's fill() steps by the change)."""
    t0 = SEASONS[season]
    twin.write(_days(t0), precision="s")
    window = f"time >= {t0 + 3 * 3600 + 420}s AND time < {t0 + (DAYS - 1) * DAY_S + 5400}s"
    tz = f" tz('{zone}')" if zone else ""
    for group in (
        "time(1d)",
        "time(1d, 6h)",
        "time(1d, -90m)",
        "time(2d, 30h)",
        "time(7d, 1d)",
        "time(6h)",
        "time(2h, 15m)",
        "time(90m)",
        "time(1h)",
        "time(12h, 7m)",
        "time(1d, 30s)",
    ):
        for fill in ("null", "none"):
            twin.compare(
                f"SELECT count(t), sum(t), min(t), max(t), first(t), last(t) FROM w WHERE {window}"
                f" GROUP BY {group} fill({fill}){tz}"
            )
    twin.compare(
        f"SELECT mean(t) FROM w WHERE {window} GROUP BY time(2h, 1h), site fill(0){tz} ORDER BY time DESC"
    )
    twin.compare(f"SELECT spread(t) FROM w WHERE {window} GROUP BY time(3h, 20m) fill(previous){tz}")
    twin.compare(f"SELECT max(t) * 2, count(t) FROM w WHERE {window} GROUP BY time(2h, 15m) fill(-1){tz}")
    for q in (  # the functions that read raw values per bucket (window functions, walks)
        "SELECT median(t), percentile(t, 90), stddev(t) FROM w WHERE {} GROUP BY time(1d, 6h)",
        "SELECT top(t, 2) FROM w WHERE {} GROUP BY time(1d, -90m)",
        "SELECT integral(t, 1h) FROM w WHERE {} GROUP BY time(6h, 30m)",
        "SELECT count(distinct(t)) FROM w WHERE {} GROUP BY time(12h, 7m)",
    ):
        twin.compare(q.format(window) + tz)


BAD_OFFSETS = [
    "10",
    "1.5",
    "x",
    "'soon'",
    "'2020-01-01'",
    "'2020-01-01T00:20:00Z'",
    "'2020-01-01x'",
    "now() - 10m",
    "2 * 15m",
    "foo()",
    "now(1)",
    "5m, 3m",
]


def test_offsets_influxdb_refuses_are_its_errors(twin: Twin) -> None:  # noqa: F811
    twin.write(POINTS, precision="ms")
    for offset in BAD_OFFSETS:
        twin.compare(
            f"SELECT count(count) FROM climate WHERE {WINDOW} GROUP BY time(1h, {offset})", exact_errors=True
        )
    twin.compare(f"SELECT count(count) FROM climate WHERE {WINDOW} GROUP BY time(1h, )")


def test_first_and_last_over_several_series_as_influxdb(twin: Twin) -> None:  # noqa: F811
    """The first (last) point of all the series, at its own time when it is the only column."""
    t0 = SEASONS["spring"]
    twin.write(_days(t0), precision="s")
    window = f"time >= {t0 + 3 * 3600 + 420}s AND time < {t0 + 4 * DAY_S + 5400}s"
    for q in (
        f"SELECT first(t) FROM w WHERE {window}",
        "SELECT last(t) FROM w",
        "SELECT first(t), last(t) FROM w",
        f"SELECT last(t) * 2 FROM w WHERE {window}",
        f"SELECT first(t), mean(t) FROM w WHERE {window}",
        f"SELECT first(t), last(t) FROM w WHERE {window} GROUP BY time(6h) fill(none)",
        f"SELECT last(t) FROM w WHERE {window} GROUP BY time(1h, 5m) fill(previous) ORDER BY time DESC",
        f"SELECT first(t) FROM w WHERE {window} GROUP BY site",
    ):
        twin.compare(q)
        twin.compare(q, epoch="ms")


def test_first_and_last_ties_between_series_as_influxdb(twin: Twin) -> None:  # noqa: F811
    """Points of several series at one time, per GROUP BY time() bucket: the greatest value wins.

    Without GROUP BY time() InfluxDB 1.6 picks among them in its merge's order (docs/decisions.md).
    """
    twin.write(
        "\n".join(
            f"tie,s={s} v={v} {t}"
            for t, values in ((100, (1, 5, 3)), (200, (7, 2, 7)), (250, (-4, -9, -1)), (300, (9, 9, 2)))
            for s, v in zip("abc", values, strict=True)
        ),
        precision="s",
    )
    twin.write(POINTS, precision="ms")  # three rooms read at the same minutes
    for fn in ("first", "last"):
        twin.compare(f"SELECT {fn}(temperature) FROM climate WHERE {WINDOW} GROUP BY time(10m)")
        twin.compare(f"SELECT {fn}(v) FROM tie WHERE time >= 0s AND time < 400s GROUP BY time(100s)")
        twin.compare(f"SELECT {fn}(v) FROM tie WHERE time >= 0s AND time < 400s GROUP BY time(100s, 50s)")


def test_offsets_and_zones_through_a_subquery_as_influxdb(twin: Twin) -> None:  # noqa: F811
    """Grafana's sum across series of per-series means, with offsets and a half-hour zone."""
    t0 = SEASONS["spring"]
    twin.write(_days(t0), precision="s")
    window = f"time >= {t0 + 3 * 3600 + 420}s AND time < {t0 + 2 * DAY_S}s"
    for inner, outer, tz in (
        ("time(1h, 15m)", "time(1h, 15m)", ""),
        ("time(10m)", "time(1h, -20m)", ""),
        ("time(30m)", "time(2h)", " tz('Asia/Kolkata')"),
        ("time(1h, 30m)", "time(6h, 90m)", " tz('America/St_Johns')"),
    ):
        twin.compare(
            f'SELECT sum("mean") FROM (SELECT mean(t) FROM w WHERE {window} GROUP BY {inner}, site)'
            f" WHERE {window} GROUP BY {outer} fill(null){tz}"
        )
    twin.compare(
        f"SELECT max(t) FROM (SELECT t FROM w WHERE {window}) WHERE {window} GROUP BY time(3h, 1h) fill(none)"
    )
    # first()/last() inside over both sites, and outside over the inner answer's series.
    twin.compare(f"SELECT mean(f) FROM (SELECT first(t) AS f FROM w WHERE {window} GROUP BY time(2h, 30m))")
    twin.compare(
        f'SELECT last("mean") FROM (SELECT mean(t) FROM w WHERE {window} GROUP BY time(1h), site)'
        f" WHERE {window} GROUP BY time(6h, 1h)"
    )
