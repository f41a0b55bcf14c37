"""InfluxQL against a real InfluxDB 1.6: a Grafana session and generated queries, answered alike.

The same points (tests/influxdiff.py writes them to both) are asked the same
statements; answers must agree in structure exactly and in values as doubles.
"""

from __future__ import annotations

import random

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.influxdiff import Twin, twin  # noqa: F401  (the fixture)

pytestmark = pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)

T0_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
HOURS = 3
ROOMS = ("lab", "hall", "cellar")


def _points() -> str:
    """Three hours of climate readings a minute apart, with gaps, per room; and a power meter.

    Numbers only as doubles: Fieldstation stores integers as doubles (docs/ingest.md), so
    ``SHOW FIELD KEYS`` calls an ``i`` field float where InfluxDB says integer.
    """
    rng = random.Random(20)
    lines = []
    for minute in range(HOURS * 60):
        ts = T0_MS + minute * 60_000
        for number, room in enumerate(ROOMS):
            if rng.random() < 0.15 or (room == "cellar" and 40 <= minute < 95):
                continue  # gaps, and a long one that leaves whole buckets empty
            temperature = round(18 + number + rng.uniform(-2, 2), 2)
            humidity = round(rng.uniform(30, 70), 1)
            lines.append(
                f"climate,device=esp{number},room={room} temperature={temperature},humidity={humidity},"
                f"count={rng.randrange(100)} {ts}"
            )
        if minute % 5 == 0:
            lines.append(f"power,phase=l1 watts={rng.randrange(0, 3000)} {ts}")
    return "\n".join(lines)


POINTS = _points()
START, END = T0_MS, T0_MS + HOURS * 3_600_000
WINDOW = f"time >= {START}ms and time <= {END}ms"


@pytest.fixture
def grafana(twin: Twin) -> Twin:  # noqa: F811
    twin.write(POINTS, precision="ms")
    return twin


def test_grafana_editor_and_health_check(grafana: Twin) -> None:
    """What Grafana's data source sends to test the connection and to fill the query editor."""
    for q in (
        "SHOW MEASUREMENTS LIMIT 1",
        "SHOW MEASUREMENTS LIMIT 100",
        'SHOW FIELD KEYS FROM "climate"',
        "SHOW FIELD KEYS",
        'SHOW TAG KEYS FROM "climate"',
        'SHOW TAG VALUES FROM "climate" WITH KEY = "room"',
        'SHOW TAG VALUES FROM "climate" WITH KEY = "device"',
        f'SHOW RETENTION POLICIES on "{grafana.database}"',
    ):
        grafana.compare(q, exact_errors=True)


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("fill", ["null", "none", "previous", "0", "-1.5"])
def test_grafana_panel_queries(grafana: Twin, method: str, fill: str) -> None:
    """Panel queries as Grafana writes them: ms bounds, GROUP BY time and a tag, each fill mode."""
    queries = [
        f'SELECT mean("temperature") FROM "climate" WHERE ("room" = \'lab\') AND {WINDOW} '
        f'GROUP BY time(10m), "room" fill({fill})',
        f'SELECT mean("temperature") FROM "autogen"."climate" WHERE {WINDOW} '
        f'GROUP BY time(5m), "room" fill({fill})',
        f'SELECT max("humidity"), min("humidity") FROM "climate" WHERE ("room" != \'hall\') AND {WINDOW} '
        f"GROUP BY time(15m) fill({fill})",
        f'SELECT sum("watts") FROM "power" WHERE {WINDOW} GROUP BY time(1h) fill({fill})',
        f'SELECT count("count") FROM "climate" WHERE "room" = \'cellar\' AND {WINDOW} '
        f"GROUP BY time(10m) fill({fill})",
    ]
    grafana.compare(";".join(queries), method=method, epoch="ms")


def test_grafana_single_stat_and_table_queries(grafana: Twin) -> None:
    """Single-stat panels (a lone selector per room) and table panels (raw rows)."""
    for q in (
        f'SELECT last("temperature") FROM "climate" WHERE {WINDOW} GROUP BY "room"',
        f'SELECT first("humidity") FROM "climate" WHERE {WINDOW} GROUP BY "room", "device"',
        f'SELECT mean("watts") FROM "power" WHERE {WINDOW}',
        f'SELECT "temperature" FROM "climate" WHERE "room" = \'lab\' AND {WINDOW} ORDER BY time DESC LIMIT 5',
        f'SELECT "watts" FROM "power" WHERE {WINDOW} LIMIT 10',
    ):
        grafana.compare(q, epoch="ms")
        grafana.compare(q)


# -- generated queries -------------------------------------------------------------------------

_FIELDS = {"climate": ("temperature", "humidity", "count"), "power": ("watts",)}
_AGGREGATES = ("mean", "min", "max", "sum", "count", "first", "last")


@st.composite
def _select(draw: st.DrawFn) -> str:
    measurement = draw(st.sampled_from(sorted(_FIELDS)))
    fields = draw(st.lists(st.sampled_from(_FIELDS[measurement]), min_size=1, max_size=2, unique=True))
    every = draw(st.sampled_from([None, "1m", "7m", "10m", "1h", "90m"]))
    grouped_tags = measurement == "climate" and draw(st.booleans())
    start = START + draw(st.integers(-30, HOURS * 60 + 30)) * 60_000 + draw(st.sampled_from([0, 0, 17_000]))
    length = draw(st.integers(1, HOURS * 60)) * 60_000
    conditions = [f"time >= {start}ms", f"time {draw(st.sampled_from(['<', '<=']))} {start + length}ms"]
    one_series = measurement == "power" or grouped_tags
    if measurement == "climate" and draw(st.booleans()):
        op = draw(st.sampled_from(["=", "!="]))
        conditions.insert(0, f"\"room\" {op} '{draw(st.sampled_from(ROOMS + ('attic',)))}'")
        one_series = one_series or op == "="
    # first()/last() over several series without GROUP BY time(): the rooms read at the same minutes,
    # and InfluxDB picks among points at one time in its merge's order there (docs/decisions.md).
    functions = (
        _AGGREGATES
        if one_series or every is not None
        else tuple(f for f in _AGGREGATES if f not in ("first", "last"))
    )
    if every is None and not grouped_tags and draw(st.booleans()):
        columns = ", ".join(f'"{f}"' for f in fields)  # raw rows
        aggregate = False
    else:
        columns = ", ".join(f'{draw(st.sampled_from(functions))}("{f}")' for f in fields)
        aggregate = True
    q = f'SELECT {columns} FROM "{measurement}" WHERE {" AND ".join(conditions)}'
    groups = []
    if every is not None and aggregate:
        offset = draw(st.sampled_from(["", "", ", 15m", ", -7m", ", 100m", ", 30s"]))
        groups.append(f"time({every}{offset})")
    if grouped_tags and aggregate:
        groups.append('"room"')
    if groups:
        q += " GROUP BY " + ", ".join(groups)
    if every is not None and aggregate:
        q += f" fill({draw(st.sampled_from(['null', 'none', 'previous', '0']))})"
    if draw(st.booleans()):
        q += " ORDER BY time DESC"
    # A raw LIMIT over several series may cut between rows of one time, which InfluxDB orders by chance.
    if (aggregate or one_series) and draw(st.booleans()):
        q += f" LIMIT {draw(st.integers(1, 20))}"
    if every is not None and aggregate:
        q += draw(st.sampled_from(["", "", " tz('Asia/Kolkata')", " tz('America/St_Johns')"]))
    return q


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), phases=[Phase.generate])
@given(statements=st.lists(_select(), min_size=1, max_size=3), epoch=st.sampled_from(["", "ms", "s"]))
def test_generated_queries_match_influxdb(twin: Twin, statements: list[str], epoch: str) -> None:  # noqa: F811
    if not getattr(twin, "filled", False):
        twin.write(POINTS, precision="ms")
        twin.filled = True  # type: ignore[attr-defined]
    params = {"epoch": epoch} if epoch else {}
    twin.compare(";".join(statements), **params)
