"""InfluxQL's functions against a real InfluxDB 1.6: the same points in both, the same queries and answers.

Aggregates (median, mode, spread, stddev, percentile, count(distinct)), selectors with the
time of their point (min, max, percentile, top, bottom), transformations over raw points and
over GROUP BY time() buckets with their units and every fill, integral(), arithmetic and
fill(linear), each compared by tests/influxdiff.py (structure exactly, numbers as doubles).
"""

from __future__ import annotations

import random

import pytest

from tests.influxdiff import Twin, twin  # noqa: F401  (the fixture)

# Both engines: the order statistics are SQL of their own on each.

T0_MS = 1_577_836_800_000  # 2020-01-01T00:00:00Z
HOURS = 3
WINDOW = f"time >= {T0_MS}ms AND time < {T0_MS + HOURS * 3_600_000}ms"
LAB = f"room = 'lab' AND {WINDOW}"
CELLAR = f"room = 'cellar' AND {WINDOW}"
FILLS = ["null", "none", "previous", "0", "-2.5", "linear"]


def _points() -> str:
    """Three hours a minute apart per room with gaps (a long one in the cellar): a temperature
    with ties (two decimals), a `unique` value per point (for the selected point's time), a
    small integer-valued `level` (for mode and distinct), an energy counter that resets, and a
    power meter every five minutes."""
    rng = random.Random(7)
    lines = []
    energy = {"lab": 0.0, "hall": 0.0, "cellar": 0.0}
    for minute in range(HOURS * 60):
        ts = T0_MS + minute * 60_000 + rng.randrange(0, 3) * 1000
        for number, room in enumerate(energy):
            if rng.random() < 0.2 or (room == "cellar" and 40 <= minute < 95):
                continue
            energy[room] = 0.0 if rng.random() < 0.03 else energy[room] + rng.randrange(0, 50) / 4
            temperature = round(18 + number + rng.uniform(-2, 2), 2)
            unique = rng.random() * 100
            lines.append(
                f"climate,room={room} temperature={temperature},unique={unique!r},"
                f"level={rng.randrange(5)},energy={energy[room]} {ts}"
            )
        if minute % 5 == 0:
            lines.append(f"power,phase=l1 watts={rng.randrange(0, 3000)} {ts}")
    return "\n".join(lines)


@pytest.fixture
def both(twin: Twin) -> Twin:  # noqa: F811
    twin.write(_points(), precision="ms")
    return twin


@pytest.mark.parametrize("fill", FILLS)
def test_aggregates_per_bucket_with_every_fill(both: Twin, fill: str) -> None:
    for q in (
        "SELECT median(temperature), spread(temperature), stddev(temperature), percentile(temperature, 90)"
        f" FROM climate WHERE {LAB} GROUP BY time(10m) fill({fill})",
        # Ten points or fewer per bucket: InfluxDB sorts a bucket's values with Go's sort.Sort, which keeps
        # the time order of equal values only up to twelve (it breaks mode()'s ties by that order).
        f"SELECT mode(level), count(distinct(level)) FROM climate WHERE {WINDOW} GROUP BY time(10m), room"
        f" fill({fill})",
        f"SELECT median(temperature) FROM climate WHERE {CELLAR} GROUP BY time(10m) fill({fill})",
        f"SELECT mean(temperature) FROM climate WHERE {CELLAR} GROUP BY time(5m) fill({fill})",
        f"SELECT percentile(unique, 0), percentile(unique, 100), percentile(unique, 33.3) FROM climate"
        f" WHERE {LAB} GROUP BY time(30m) fill({fill})",
    ):
        both.compare(q, epoch="ms")


def test_aggregates_over_the_window(both: Twin) -> None:
    for q in (
        "SELECT median(temperature), mode(level), spread(temperature), stddev(temperature) FROM climate"
        f" WHERE {LAB}",
        "SELECT median(temperature), stddev(energy), count(distinct(level)) FROM climate"
        f" WHERE {WINDOW} GROUP BY room",
        f"SELECT median(temperature) FROM climate WHERE {WINDOW}",
        f"SELECT distinct(level) FROM climate WHERE {LAB}",
        f"SELECT distinct(level) FROM climate WHERE {LAB} GROUP BY time(1h)",
        "SELECT stddev(watts), median(watts) FROM power",
    ):
        both.compare(q)


def test_selectors_answer_with_their_points_time(both: Twin) -> None:
    for q in (
        f"SELECT max(unique) FROM climate WHERE {LAB}",
        f"SELECT min(unique) FROM climate WHERE {WINDOW}",
        f"SELECT max(unique) FROM climate WHERE {WINDOW} GROUP BY room",
        f"SELECT percentile(unique, 30) FROM climate WHERE {LAB}",
        f"SELECT percentile(unique, 30) FROM climate WHERE {WINDOW} GROUP BY room",
        f"SELECT top(unique, 3) FROM climate WHERE {LAB}",
        f"SELECT bottom(unique, 4) FROM climate WHERE {WINDOW} GROUP BY room",
        f"SELECT top(unique, 2) FROM climate WHERE {LAB} GROUP BY time(30m)",
        f"SELECT max(unique) * 2 FROM climate WHERE {LAB}",
        f"SELECT max(unique), min(unique) FROM climate WHERE {LAB}",
        f"SELECT last(unique) FROM climate WHERE {LAB}",
    ):
        both.compare(q)


def test_transformations_of_raw_points(both: Twin) -> None:
    for q in (
        f"SELECT derivative(energy) FROM climate WHERE {LAB}",
        f"SELECT derivative(energy, 1m) FROM climate WHERE {LAB}",
        f"SELECT non_negative_derivative(energy, 1h) FROM climate WHERE {LAB}",
        f"SELECT difference(energy), non_negative_difference(energy) FROM climate WHERE {LAB}",
        f"SELECT cumulative_sum(watts), moving_average(watts, 3) FROM power WHERE {WINDOW}",
        f"SELECT integral(watts) FROM power WHERE {WINDOW}",
        "SELECT integral(watts, 1h) FROM power",
        # (InfluxDB 1.6 lists the series of integral() GROUP BY a tag in no defined order: one tag value.)
        f"SELECT integral(energy, 1m) FROM climate WHERE room = 'hall' AND {WINDOW} GROUP BY room",
        f"SELECT derivative(energy, 1s) * 60 FROM climate WHERE {LAB}",
        f"SELECT non_negative_difference(energy) FROM climate WHERE {LAB} LIMIT 7",
    ):
        both.compare(q, epoch="ms")


@pytest.mark.parametrize("fill", FILLS)
def test_transformations_of_buckets(both: Twin, fill: str) -> None:
    for q in (
        f"SELECT derivative(mean(temperature)) FROM climate WHERE {CELLAR} GROUP BY time(10m) fill({fill})",
        f"SELECT derivative(mean(temperature), 1m) FROM climate WHERE {LAB} GROUP BY time(10m) fill({fill})",
        f"SELECT non_negative_derivative(max(energy), 1h) FROM climate WHERE {WINDOW}"
        f" GROUP BY time(15m), room fill({fill})",
        f"SELECT difference(last(energy)), non_negative_difference(last(energy)) FROM climate WHERE {LAB}"
        f" GROUP BY time(10m) fill({fill})",
        f"SELECT cumulative_sum(sum(watts)) FROM power WHERE {WINDOW} GROUP BY time(20m) fill({fill})",
        f"SELECT moving_average(mean(temperature), 3) FROM climate WHERE {CELLAR}"
        f" GROUP BY time(10m) fill({fill})",
        f"SELECT mean(temperature), derivative(mean(temperature)) FROM climate WHERE {CELLAR}"
        f" GROUP BY time(10m) fill({fill})",
        f"SELECT integral(watts, 1h) FROM power WHERE {WINDOW} GROUP BY time(30m) fill({fill})",
        f"SELECT integral(energy, 1m) FROM climate WHERE {LAB} GROUP BY time(1h) fill({fill})",
        f"SELECT derivative(median(temperature), 1h) FROM climate WHERE {LAB}"
        f" GROUP BY time(20m) fill({fill})",
    ):
        both.compare(q, epoch="ms")


def test_arithmetic(both: Twin) -> None:
    for q in (
        f"SELECT mean(watts) / 1000 FROM power WHERE {WINDOW}",
        f"SELECT mean(watts) / 1000, max(watts) - min(watts) FROM power WHERE {WINDOW} GROUP BY time(30m)",
        f'SELECT "temperature" * 2 + 1, -temperature FROM climate WHERE {LAB} LIMIT 20',
        f"SELECT (temperature + energy) / 2, temperature - energy * 3 FROM climate WHERE {LAB} LIMIT 20",
        f"SELECT mean(temperature) + mean(energy) FROM climate WHERE {WINDOW} GROUP BY room",
        f"SELECT temperature / 0 FROM climate WHERE {LAB} LIMIT 3",
        f"SELECT -(mean(temperature) - 20) * 1.5 FROM climate WHERE {LAB} GROUP BY time(1h)",
    ):
        both.compare(q, epoch="ms")


def test_errors_are_influxdbs(both: Twin) -> None:
    for q in (
        "SELECT derivative(mean(temperature)) FROM climate",
        f"SELECT derivative(temperature) FROM climate WHERE {WINDOW} GROUP BY time(1m)",
        "SELECT top(unique, 2), mean(unique) FROM climate",
        "SELECT percentile(unique) FROM climate",
        "SELECT mean(unique, 2) FROM climate",
        "SELECT moving_average(unique, 1) FROM climate",
        "SELECT top(unique, 0) FROM climate",
        "SELECT mean(mean(unique)) FROM climate",
    ):
        both.compare(q)


def test_a_window_that_starts_inside_a_bucket(both: Twin) -> None:
    """InfluxDB moves a transformation's start back by one interval, not to a bucket's start: the
    first bucket then holds the readings before the window's start too."""
    window = f"room = 'lab' AND time >= {T0_MS + 183_000}ms AND time < {T0_MS + 7_000_000}ms"
    for fill in ("null", "0", "linear"):
        for q in (
            f"SELECT derivative(mean(temperature)), mean(temperature) FROM climate WHERE {window}"
            f" GROUP BY time(10m) fill({fill})",
            f"SELECT moving_average(max(temperature), 2) FROM climate WHERE {window}"
            f" GROUP BY time(10m) fill({fill})",
            f"SELECT integral(temperature, 1m), median(temperature) FROM climate WHERE {window}"
            f" GROUP BY time(10m) fill({fill})",
        ):
            both.compare(q, epoch="ms")


def test_descending_order(both: Twin) -> None:
    """ORDER BY time DESC fills in its own order (previous and linear look at later buckets); top()
    stays in time order, as InfluxDB lists it."""
    for fill in ("previous", "linear", "null"):
        both.compare(
            f"SELECT median(temperature), mean(temperature) * 2 FROM climate WHERE {CELLAR}"
            f" GROUP BY time(10m) fill({fill}) ORDER BY time DESC",
            epoch="ms",
        )
    both.compare(f"SELECT top(unique, 3) FROM climate WHERE {LAB} ORDER BY time DESC", epoch="ms")
    both.compare(f"SELECT temperature * 2 FROM climate WHERE {LAB} ORDER BY time DESC LIMIT 5", epoch="ms")
