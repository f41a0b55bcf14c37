"""InfluxQL subqueries (``SELECT … FROM (SELECT …)``) against a real InfluxDB 1.6, and generated
subquery text that must never give a 500.

The same meter readings (three devices on two sites, with gaps, some off the minute) are written
to both (tests/influxdiff.py); every query's answer must agree.
"""

from __future__ import annotations

import random

import pytest
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.factories import Account, make_channel
from tests.influxdiff import Twin, twin  # noqa: F401  (the fixture)

#: Generated queries run on SQLite only (the engine's part is compared on both elsewhere).
SQLITE = pytest.mark.parametrize("engine_name", ["sqlite"], indirect=True)

T0_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
HOUR_MS = 3_600_000
WINDOW = f"time >= {T0_MS}ms AND time < {T0_MS + 3 * HOUR_MS}ms"
#: As Grafana writes $timeFilter: the start off the buckets' edges, the end inclusive (on a reading).
ODD = f"time >= {T0_MS + 1_234_567}ms and time <= {T0_MS + 2 * HOUR_MS + 720_000}ms"


def _points() -> str:
    """Three hours of a power meter per device, a minute apart with gaps (device c off for over an
    hour), every seventh minute 13 s late; devices a and b on site n, c on site s."""
    rng = random.Random(5)
    lines = []
    for minute in range(180):
        ts = T0_MS + minute * 60_000 + (0 if minute % 7 else 13_000)
        for number, device in enumerate(("a", "b", "c")):
            if rng.random() < 0.2 or (device == "c" and 30 <= minute < 100):
                continue
            site = "n" if number < 2 else "s"
            power, volt = round(rng.uniform(0, 500), 2), round(rng.uniform(220, 240), 1)
            lines.append(f"energy,device={device},site={site} power={power},volt={volt} {ts}")
    return "\n".join(lines)


@pytest.fixture
def meters(twin: Twin) -> Twin:  # noqa: F811
    twin.write(_points(), precision="ms")
    return twin


def _inner(window: str = WINDOW, select: str = 'mean("power")', group: str = 'time(1m), "device"') -> str:
    where = f" WHERE {window}" if window else ""
    return f'(SELECT {select} FROM "energy"{where} GROUP BY {group})'


@pytest.mark.parametrize("outer", ["sum", "max", "mean", "count", "min"])
def test_sum_of_per_series_aggregates(meters: Twin, outer: str) -> None:
    """Grafana's commonest subquery: an aggregate across devices of each device's mean per minute,
    with the time bounds in both queries, only outside, or off the buckets' edges."""
    for window in (WINDOW, ODD):
        for inner in (_inner(window), _inner("")):
            for group, fill in (("time(1h)", "fill(none)"), ("time(20m)", ""), ("time(20m)", "fill(0)")):
                meters.compare(f'SELECT {outer}("mean") FROM {inner} WHERE {window} GROUP BY {group} {fill}')
    meters.compare(f'SELECT {outer}("mean") FROM {_inner()} WHERE {WINDOW}', epoch="ms")


def test_aliases_tags_and_arithmetic_outside(meters: Twin) -> None:
    """An alias inside read by its name outside; outer GROUP BY a tag the inner grouped by, or one it
    did not (InfluxDB adds the outer tags to the inner GROUP BY); arithmetic on outer aggregates."""
    aliased = _inner(select='mean("power") AS "p", max("volt") AS "v"')
    for q in (
        f'SELECT sum("p"), max("v") FROM {aliased} WHERE {WINDOW} GROUP BY time(30m) fill(none)',
        f'SELECT max("p") FROM {aliased} WHERE {WINDOW} GROUP BY "device"',
        f'SELECT sum("p") FROM {aliased} WHERE {WINDOW} GROUP BY time(1h), "site" fill(none)',
        f'SELECT count("p") FROM {_inner(group="time(30m)")} WHERE {WINDOW} GROUP BY "device"',
        f'SELECT sum("mean") / 1000 FROM {_inner()} WHERE {WINDOW} GROUP BY time(1h) fill(none)',
        f'SELECT first("mean"), last("mean") FROM {_inner()} WHERE {WINDOW} GROUP BY time(1h)',
        f'SELECT sum("mean") FROM {_inner()} WHERE {WINDOW} AND "device" != \'b\' GROUP BY time(1h)',
        f'SELECT mean("mean") FROM {_inner()} WHERE {WINDOW} GROUP BY time(1h) ORDER BY time DESC LIMIT 2',
        f'SELECT sum("mean") FROM {_inner()} WHERE {ODD} GROUP BY time(1h) fill(linear)',
    ):
        meters.compare(q, epoch="ms")
    meters.compare(
        f"SELECT sum(\"mean\") FROM {_inner()} WHERE {WINDOW} GROUP BY time(1h) tz('Europe/Paris')"
    )


def test_raw_selects_over_an_inner_aggregate(meters: Twin) -> None:
    """Raw outer columns: a row per inner row, tags as columns, ``*``, conditions on the inner's fields."""
    inner = _inner(group='time(10m), "device"')
    for q in (
        f'SELECT "mean" FROM {inner} WHERE {ODD}',
        f'SELECT "mean", "device" FROM {inner} WHERE {WINDOW}',
        f"SELECT * FROM {inner} WHERE {WINDOW}",
        f'SELECT "mean" FROM {inner} WHERE {WINDOW} GROUP BY "device"',
        f'SELECT "mean" FROM {inner} WHERE {WINDOW} AND "mean" > 250',
        f'SELECT "mean" * 2 FROM {inner} WHERE {WINDOW} AND "mean" <= 200 AND "device" = \'a\'',
        f'SELECT "mean" FROM {inner} WHERE {WINDOW} AND "site" = \'n\'',
        f'SELECT "mean" FROM {inner} WHERE {WINDOW} GROUP BY "device" ORDER BY time DESC LIMIT 3',
    ):
        meters.compare(q, epoch="ms")
        meters.compare(q)


def test_aggregates_over_an_inner_raw_select(meters: Twin) -> None:
    """An inner raw select, bounded as raw selects are; the outer aggregates its points."""
    short = f"time >= {T0_MS + HOUR_MS}ms AND time < {T0_MS + HOUR_MS + 1_200_000}ms"
    for q in (
        f'SELECT max("power") FROM (SELECT "power" FROM "energy" WHERE {short})',
        f'SELECT max("power"), min("power") FROM (SELECT "power" FROM "energy" WHERE {short})',
        f'SELECT mean("power") FROM (SELECT "power" FROM "energy") WHERE {short} GROUP BY time(5m)',
        f'SELECT sum("power") FROM (SELECT "power", "volt" FROM "energy" WHERE "site" = \'n\') '
        f"WHERE {WINDOW} GROUP BY time(30m)",
        f'SELECT count("power") FROM (SELECT "power" FROM "energy" WHERE {short}) GROUP BY "device"',
    ):
        meters.compare(q, epoch="ms")


@st.composite
def _inner_select(draw: st.DrawFn) -> tuple[str, list[str], list[str]]:
    """An inner statement's SELECT list, the answer's column names, and its GROUP BY."""
    tags = draw(st.sampled_from([[], ['"device"'], ['"site"'], ['"device"', '"site"']]))
    if draw(st.integers(0, 3)) == 0:
        fields = draw(st.sampled_from([["power"], ["power", "volt"]]))
        return ", ".join(f'"{f}"' for f in fields), fields, tags
    # TODO(#20): first() over several series (InfluxDB merges them) once the engine's selectors do.
    functions = ["mean", "max", "count", "sum", "min"] + (["first"] if '"device"' in tags else [])
    calls = [(draw(st.sampled_from(functions)), "power")]
    if draw(st.integers(0, 3)) == 0:
        calls.append(("max", "volt"))
    aliases = [draw(st.sampled_from(["", "p"])), "v"][: len(calls)]
    select = ", ".join(
        f'{f}("{field}")' + (f' AS "{a}"' if a else "") for (f, field), a in zip(calls, aliases, strict=True)
    )
    names = [a or f for (f, _), a in zip(calls, aliases, strict=True)]
    every = draw(st.sampled_from([None, "1m", "5m", "10m", "1h"]))
    return select, names, ([f"time({every})"] if every else []) + tags


@st.composite
def _subquery(draw: st.DrawFn) -> str:
    """A subquery statement of the shapes Grafana users write, with the knobs InfluxDB passes between
    the two levels: time bounds in either or both, GROUP BY tags inside and out, conditions on the
    answer's tags and fields, fills, order, limits."""
    inner_select, names, inner_group = draw(_inner_select())
    column = draw(st.sampled_from(names))
    offset = draw(st.integers(0, 150)) * 60_000 + draw(st.sampled_from([0, 0, 17_000]))
    window = f"time >= {T0_MS + offset}ms AND time < {T0_MS + offset + draw(st.integers(5, 120)) * 60_000}ms"
    inner_where = [window] if draw(st.booleans()) else []
    # GROUP BY time() without a lower time bound anywhere is refused here (docs/query.md).
    bounded = bool(inner_where) or not any(g.startswith("time") for g in inner_group)
    if draw(st.booleans()):
        inner_where.append("\"device\" != 'b'")
    inner = f'SELECT {inner_select} FROM "energy"'
    inner += f" WHERE {' AND '.join(inner_where)}" if inner_where else ""
    inner += f" GROUP BY {', '.join(inner_group)}" if inner_group else ""
    outer_every = draw(st.sampled_from([None, "10m", "30m", "1h"]))
    aggregate = outer_every is not None or draw(st.booleans())
    if aggregate:
        functions = draw(
            st.lists(
                st.sampled_from(["sum", "max", "mean", "count", "min", "first", "last"]),
                min_size=1,
                max_size=2,
            )
        )
        outer = "SELECT " + ", ".join(f'{f}("{column}")' for f in functions)
        outer += draw(st.sampled_from(["", "", " / 1000"])) if len(functions) == 1 else ""
    else:
        outer = "SELECT " + draw(
            st.sampled_from([f'"{column}"', "*", f'"{column}", "device"', f'"{column}" * 2'])
        )
    outer += f" FROM ({inner})"
    outer_where = [window] if outer_every or not bounded or draw(st.booleans()) else []
    if draw(st.integers(0, 3)) == 0:
        outer_where.append(f'"{column}" > 200')
    if draw(st.integers(0, 3)) == 0:
        outer_where.append(draw(st.sampled_from(["\"device\" = 'a'", "\"site\" != 's'"])))
    outer += f" WHERE {' AND '.join(outer_where)}" if outer_where else ""
    outer_group = [f"time({outer_every})"] if outer_every else []
    outer_group += draw(st.sampled_from([[], ['"device"'], ['"site"']]))
    outer += f" GROUP BY {', '.join(outer_group)}" if outer_group else ""
    if outer_every:
        outer += f" fill({draw(st.sampled_from(['null', 'none', 'previous', '0']))})"
    if draw(st.booleans()):
        outer += " ORDER BY time DESC"
    if aggregate and draw(st.booleans()):
        outer += f" LIMIT {draw(st.integers(1, 5))}"
    return outer


@SQLITE
@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    phases=[Phase.generate],
)
@given(q=_subquery())
def test_generated_subqueries_match_influxdb(twin: Twin, q: str) -> None:  # noqa: F811
    if not getattr(twin, "filled", False):
        twin.write(_points(), precision="ms")
        twin.filled = True  # type: ignore[attr-defined]
    twin.compare(q, epoch="ms")


def test_what_is_refused_is_a_clear_error(meters: Twin) -> None:
    """Nested subqueries and outer functions beyond the aggregates are refused, never a 500."""
    for q in (
        'SELECT sum("mean") FROM (SELECT mean("p") FROM (SELECT "power" AS "p" FROM "energy"))',
        f'SELECT median("mean") FROM {_inner()} WHERE {WINDOW}',
        f'SELECT sum("mean") FROM {_inner()} WHERE {WINDOW} OR "mean" > 3',
    ):
        ours, _ = meters.answers(q)
        assert ours.status in (200, 400)
        text = ours.body.get("error") or ours.body["results"][0].get("error")
        assert text and "not supported" in text, ours.body


_PIECES = st.sampled_from(
    [
        "SELECT",
        "FROM",
        "(",
        ")",
        'mean("power")',
        '"mean"',
        "sum(",
        "*",
        ",",
        "WHERE",
        f"time >= {T0_MS}ms",
        "AND",
        "OR",
        '"mean" > 5',
        "\"device\" = 'a'",
        "GROUP BY",
        "time(1m)",
        '"device"',
        "fill(none)",
        "LIMIT 2",
        "SLIMIT 1",
        '"energy"',
        "ORDER BY time DESC",
        "max(x) AS m",
    ]
)


@pytest.fixture
def meter_channel(app: Flask, owner: Account) -> tuple[str, str]:
    """A channel holding the meter readings: its name and read key."""
    channel = make_channel(owner.user, name="meters", fields=[])
    client = app.test_client()
    answer = client.post(
        "/write?db=meters&precision=ms",
        data=_points().encode(),
        headers={"Authorization": f"Token {channel.write_key}"},
    )
    assert answer.status_code == 204
    return "meters", channel.read_key


@st.composite
def _mutated(draw: st.DrawFn) -> str:
    """A generated subquery with a few words dropped, repeated or replaced by fragments."""
    words = draw(_subquery()).split(" ")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(words) - 1))
        action = draw(st.sampled_from(["drop", "repeat", "replace"]))
        if action == "drop" and len(words) > 1:
            del words[at]
        elif action == "repeat":
            words.insert(at, words[at])
        else:
            words[at] = draw(_PIECES)
    return " ".join(words)


_FRAGMENTS = st.builds(
    lambda head, pieces: head + " ".join(pieces),
    st.sampled_from(['SELECT sum("mean") FROM (', 'SELECT "mean" FROM (', "SELECT * FROM (SELECT ("]),
    st.lists(_PIECES, max_size=14),
)


@SQLITE
@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.one_of(_FRAGMENTS, _mutated(), _subquery()))
def test_subquery_shapes_never_give_a_500(app: Flask, meter_channel: tuple[str, str], text: str) -> None:
    """Fragments of subquery syntax in any order and generated subqueries with words dropped,
    repeated or replaced, run on a channel with readings: a 200 (maybe a statement error) or
    InfluxDB's 400, never a 500."""
    name, key = meter_channel
    response = app.test_client().get(
        "/query", query_string={"q": text, "db": name}, headers={"Authorization": f"Token {key}"}
    )
    assert response.status_code in (200, 400), (text, response.data)
