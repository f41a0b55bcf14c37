"""Read blocks: long reads from packed hours give exactly what the readings hold (both engines)."""

from __future__ import annotations

import itertools
import math
import os
from typing import Any

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from fieldstation import blocks, query, retention, rollups, store
from fieldstation.extensions import db
from fieldstation.points import Batch, Entry
from fieldstation.timeunits import DAY, HOUR, MINUTE, SECOND
from tests.factories import ChannelKeys, make_channel, make_user

BASE = 1_700_000_000 * SECOND - (1_700_000_000 * SECOND) % DAY  # 2023-11-14T00:00:00Z
EXAMPLES = itertools.count()
#: BLOCK_EXAMPLES=1000 explores further on a local run.
PROPERTY = settings(
    max_examples=int(os.environ.get("BLOCK_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def owner() -> Any:
    """One account for every example of a test (hashing a password per example is slow)."""
    from fieldstation.models import User

    found = db.session.scalar(select(User).where(User.username == "owner"))
    return found if found is not None else make_user("owner").user


def field_id(channel_id: int) -> int:
    found = query.field_of(channel_id, 1)
    assert found is not None
    return found.id


def truth(fid: int, lo: int, hi: int) -> list[tuple[int, float | str | None]]:
    """Every reading of the field in [lo, hi) straight from the readings table, oldest first."""
    rows = db.session.execute(
        text("SELECT ts, value, text FROM readings WHERE field_id = :f AND ts >= :a AND ts < :z ORDER BY ts"),
        {"f": fid, "a": lo, "z": hi},
    ).all()
    db.session.rollback()
    return [(ts, value if value is not None else txt) for ts, value, txt in rows]


def read(fid: int, lo: int, hi: int, **options: Any) -> list[tuple[int, float | str | None]]:
    got = query.series_rows(fid, lo, hi, **options)
    return [(ts, value if value is not None else got.texts.get(ts)) for ts, value in got.pairs]


def block_hours(fid: int) -> list[int]:
    hours = db.session.execute(
        text("SELECT ts FROM reading_blocks WHERE field_id = :f ORDER BY ts"), {"f": fid}
    ).scalars()
    result = list(hours)
    db.session.rollback()
    return result


def test_a_day_of_minutes_reads_from_its_blocks_as_from_the_readings(channel: ChannelKeys) -> None:
    store.write(Batch(channel.id, [Entry({1: i / 10}, ts=BASE + i * MINUTE) for i in range(3 * 1440)]))
    fid = field_id(channel.id)
    assert block_hours(fid) == []
    rollups.refresh(fid)
    assert len(block_hours(fid)) == 72
    lo, hi = BASE + DAY + 7 * MINUTE + 5 * SECOND, BASE + 2 * DAY + 30 * MINUTE
    assert read(fid, lo, hi, limit=5000) == truth(fid, lo, hi)
    assert read(fid, lo, hi, limit=5000, descending=True) == truth(fid, lo, hi)[::-1]
    assert read(fid, lo, hi, limit=300) == truth(fid, lo, hi)[:300]
    assert read(fid, BASE, BASE + 3 * DAY, limit=8000, descending=True)[:2] == [
        (BASE + 3 * DAY - MINUTE, 431.9),
        (BASE + 3 * DAY - 2 * MINUTE, 431.8),
    ]


def test_late_writes_are_read_from_the_readings_until_the_next_refresh(channel: ChannelKeys) -> None:
    store.write(Batch(channel.id, [Entry({1: float(i)}, ts=BASE + i * MINUTE) for i in range(600)]))
    fid = field_id(channel.id)
    rollups.refresh(fid)
    # A late reading, a number replaced by text and another by a new number, in packed hours.
    store.write(
        Batch(
            channel.id,
            [
                Entry({1: -1.5}, ts=BASE + 2 * HOUR + 30 * SECOND),
                Entry({1: "door open"}, ts=BASE + 3 * HOUR),
                Entry({1: 1e300}, ts=BASE + 5 * HOUR + 4 * MINUTE),
            ],
        )
    )
    got = read(fid, BASE, BASE + 10 * HOUR, limit=1000)
    assert got == truth(fid, BASE, BASE + 10 * HOUR)
    assert (BASE + 2 * HOUR + 30 * SECOND, -1.5) in got
    assert (BASE + 3 * HOUR, "door open") in got
    assert rollups.refresh(fid) == 3
    assert read(fid, BASE, BASE + 10 * HOUR, limit=1000) == got


def test_purged_hours_lose_their_blocks(channel: ChannelKeys) -> None:
    store.write(Batch(channel.id, [Entry({1: float(i)}, ts=BASE + i * MINUTE) for i in range(600)]))
    fid = field_id(channel.id)
    rollups.refresh(fid)
    cutoff = BASE + 4 * HOUR + 20 * MINUTE
    retention.purge(older_than_days=(cutoff_days := 1), now=cutoff + cutoff_days * DAY)
    assert block_hours(fid) == [BASE + h * HOUR for h in range(5, 10)]
    assert read(fid, BASE - DAY, BASE + DAY, limit=1000) == truth(fid, BASE, BASE + DAY)
    assert read(fid, BASE - DAY, BASE + DAY, limit=1000)[0] == (cutoff, 260.0)


def test_deleting_a_field_deletes_its_blocks(channel: ChannelKeys) -> None:
    from fieldstation import manage
    from fieldstation.models import Field

    store.write(Batch(channel.id, [Entry({1: 1.0, 2: 2.0}, ts=BASE + i * MINUTE) for i in range(120)]))
    rollups.refresh()
    fid = field_id(channel.id)
    assert len(block_hours(fid)) == 2
    manage.delete_field(db.session.get(Field, fid))
    assert block_hours(fid) == []


def test_packing_keeps_every_bit() -> None:
    rows = [(5, -0.0), (7, None), (9, 1e-320), (11, 1.7976931348623157e308), (13, 0.1 + 0.2)]
    times, values = blocks.unpack(*blocks.pack(rows)[:3], blocks.pack(rows)[4])
    assert list(times) == [5, 7, 9, 11, 13]
    assert math.isnan(values[1])
    assert [math.copysign(1, values[0]), *values[2:]] == [-1.0, 1e-320, 1.7976931348623157e308, 0.1 + 0.2]
    irregular = [(-3 * HOUR, 1.0), (-3 * HOUR + 1, 2.0), (-3 * HOUR + 5, 3.0)]
    n, t0, step, texts, data = blocks.pack(irregular)
    assert (n, t0, step, texts, len(data)) == (3, -3 * HOUR, 0, 0, 48)
    assert list(zip(*blocks.unpack(n, t0, step, data), strict=True)) == irregular


#: Times on whole minutes (so that writes collide with packed readings), some a little off them.
moments = st.builds(
    lambda minute, off: BASE + minute * MINUTE + off,
    st.integers(min_value=-120, max_value=3 * 1440),
    st.sampled_from([0, 0, 0, 1, 30 * SECOND]),
)
stamps = st.lists(moments, min_size=1, max_size=120)
#: Windows of whole hours and then some, from before the first reading to after the last.
windows = st.builds(
    lambda start, hours, extra: (start * MINUTE, hours * HOUR + extra * MINUTE),
    st.integers(min_value=-180, max_value=3 * 1440),
    st.integers(min_value=0, max_value=96),
    st.integers(min_value=0, max_value=59),
)
values = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False, width=64), st.sampled_from(["on", "off", "é"])
)


@PROPERTY
@given(
    first=st.lists(st.tuples(stamps, values), min_size=1, max_size=3),
    later=st.lists(st.tuples(stamps, values), max_size=2),
    regular=st.sampled_from([0, MINUTE, 7 * SECOND, HOUR]),
    window=windows,
    limit=st.integers(min_value=blocks.WORTHWHILE, max_value=2000),
    descending=st.booleans(),
    after=st.none() | moments.map(lambda ts: ts - BASE),
)
def test_reads_agree_with_the_readings(
    app: Flask,
    first: list[tuple[list[int], float | str]],
    later: list[tuple[list[int], float | str]],
    regular: int,
    window: tuple[int, int],
    limit: int,
    descending: bool,
    after: int | None,
) -> None:
    """Any mix of packed, marked, late and text readings reads back as the readings hold it."""
    keys = make_channel(owner(), f"channel {next(EXAMPLES)}")
    fid = field_id(keys.id)
    if regular:  # an evenly spaced run, as a sensor on a timer writes
        store.write(Batch(keys.id, [Entry({1: float(i)}, ts=BASE + i * regular) for i in range(300)]))
    for times, value in first:
        store.write(Batch(keys.id, [Entry({1: value}, ts=ts) for ts in sorted(set(times))]))
    rollups.refresh(fid)
    for times, value in later:
        store.write(Batch(keys.id, [Entry({1: value}, ts=ts) for ts in sorted(set(times))]))
    lo, hi = BASE + window[0], BASE + window[0] + window[1]
    expected = truth(fid, lo, hi)
    if after is not None:
        mark = BASE + after
        expected = [r for r in expected if (r[0] < mark if descending else r[0] > mark)]
    expected = (expected[::-1] if descending else expected)[:limit]
    got = read(fid, lo, hi, limit=limit, descending=descending, after=None if after is None else BASE + after)
    assert got == expected
