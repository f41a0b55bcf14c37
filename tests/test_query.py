"""query: rows, latest values, keyset paging and SQL time buckets, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import threading
from typing import Any

import pytest
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldstation import query, store
from fieldstation.buckets import Bucket, Plan, auto_every
from fieldstation.errors import BadRequest
from fieldstation.points import Batch, Entry
from fieldstation.query import Point
from fieldstation.rollups import buckets, raw_partials
from fieldstation.timeunits import DAY, HOUR, MINUTE, SECOND, datetime_to_us
from tests.concurrency import in_thread, waits
from tests.factories import ChannelKeys, make_channel, make_user

T0 = 1_700_000_000 * SECOND  # 2023-11-14T22:13:20Z


def field_id(channel: ChannelKeys, number: int) -> int:
    found = query.field_of(channel.id, number)
    assert found is not None
    return found.id


def write(channel: ChannelKeys, *entries: Entry) -> None:
    store.write(Batch(channel.id, list(entries)))


def test_latest_entry_and_values(channel: ChannelKeys) -> None:
    assert query.latest_entry(channel.id) is None
    assert query.latest_values(channel.id) == {}
    write(
        channel,
        Entry({1: 20.0, 2: 50.0}, ts=T0, status="boot"),
        Entry({1: 21.0}, ts=T0 + SECOND, latitude=52.5, longitude=13.4, elevation=34.0),
        Entry({1: "open"}, ts=T0 + 2 * SECOND),
    )
    last = query.latest_entry(channel.id)
    assert last == query.EntryRow(3, T0 + 2 * SECOND, None, None, None, None, {1: "open"})
    assert query.latest_values(channel.id) == {
        1: Point(T0 + 2 * SECOND, None, "open"),
        2: Point(T0, 50.0, None),
    }


def test_entries_newest_in_window_oldest_first(channel: ChannelKeys) -> None:
    write(
        channel, *[Entry({1: float(i), 2: float(-i)}, ts=T0 + i * SECOND, status=f"s{i}") for i in range(10)]
    )
    rows = query.entries(channel.id, T0 + 2 * SECOND, T0 + 8 * SECOND, limit=3)
    assert [r.ts for r in rows] == [T0 + 5 * SECOND, T0 + 6 * SECOND, T0 + 7 * SECOND]
    assert [r.entry_id for r in rows] == [6, 7, 8]
    assert rows[0].values == {1: 5.0, 2: -5.0} and rows[0].status == "s5"
    only2 = query.entries(channel.id, None, None, limit=2, fields=[2])
    assert [r.values for r in only2] == [{2: -8.0}, {2: -9.0}]
    assert query.entries(channel.id, T0 + 100 * SECOND, None, limit=5) == []


def test_series_keyset_paging_both_directions(channel: ChannelKeys) -> None:
    write(channel, *[Entry({1: float(i)}, ts=T0 + i * SECOND) for i in range(7)])
    fid = field_id(channel, 1)
    end = T0 + 7 * SECOND
    page1 = query.series(fid, T0, end, limit=3)
    page2 = query.series(fid, T0, end, limit=3, after=page1[-1].ts)
    page3 = query.series(fid, T0, end, limit=3, after=page2[-1].ts)
    assert [p.value for p in page1 + page2 + page3] == [0, 1, 2, 3, 4, 5, 6]
    down1 = query.series(fid, T0, end, limit=4, descending=True)
    down2 = query.series(fid, T0, end, limit=4, descending=True, after=down1[-1].ts)
    assert [p.value for p in down1 + down2] == [6, 5, 4, 3, 2, 1, 0]
    assert list(query.iter_series(fid, T0, end, page=2)) == page1 + page2 + page3
    assert [e.ts for e in query.iter_entries(channel.id, T0, end, page=3)] == [
        T0 + i * SECOND for i in range(7)
    ]


def test_buckets_aggregate_numbers_and_skip_text(channel: ChannelKeys) -> None:
    start = T0 - T0 % HOUR
    write(
        channel,
        Entry({1: 1.0}, ts=start),
        Entry({1: 3.0}, ts=start + 10 * MINUTE),
        Entry({1: "n/a"}, ts=start + 20 * MINUTE),
        Entry({1: 2.0}, ts=start + 50 * MINUTE),
        Entry({1: 10.0}, ts=start + 2 * HOUR + MINUTE),
    )
    fid = field_id(channel, 1)
    got = buckets(fid, start, start + 3 * HOUR, HOUR)
    late = start + 2 * HOUR + MINUTE  # the times of the first and the last reading are kept too
    assert got == [
        Bucket(start, 3, 2.0, 1.0, 3.0, 6.0, 1.0, 2.0, start, start + 50 * MINUTE),
        Bucket(start + 2 * HOUR, 1, 10.0, 10.0, 10.0, 10.0, 10.0, 10.0, late, late),
    ]
    # A window cutting a bucket only counts the readings inside it.
    cut = buckets(fid, start + 5 * MINUTE, start + 3 * HOUR, HOUR)
    assert cut[0] == Bucket(start, 2, 2.5, 2.0, 3.0, 5.0, 3.0, 2.0, start + 10 * MINUTE, start + 50 * MINUTE)


def test_day_buckets_follow_local_midnight_across_dst(channel: ChannelKeys) -> None:
    berlin = dt.timezone(dt.timedelta(hours=1))  # CET before 2024-03-31 02:00
    day1 = datetime_to_us(dt.datetime(2024, 3, 30, tzinfo=berlin))
    day2 = day1 + DAY  # 2024-03-31 00:00 CET
    day3 = day2 + 23 * HOUR  # 2024-04-01 00:00 CEST: the DST day is 23 h long
    write(
        channel,
        Entry({1: 1.0}, ts=day1 + HOUR),
        Entry({1: 2.0}, ts=day2 + HOUR),
        Entry({1: 4.0}, ts=day3 - 30 * MINUTE),  # 23:30 local on the 31st
        Entry({1: 8.0}, ts=day3 + 30 * MINUTE),
    )
    fid = field_id(channel, 1)
    got = buckets(fid, day1, day3 + DAY, DAY, tz="Europe/Berlin")
    assert [(b.start, b.sum) for b in got] == [(day1, 1.0), (day2, 6.0), (day3, 8.0)]
    utc = buckets(fid, day1, day3 + DAY, DAY)
    assert [b.start % DAY for b in utc] == [0] * len(utc)


def test_week_buckets_align_to_epoch_days(channel: ChannelKeys) -> None:
    write(channel, Entry({1: 1.0}, ts=T0))
    (bucket,) = buckets(field_id(channel, 1), T0 - 30 * DAY, T0 + DAY, 7 * DAY)
    assert bucket.start % (7 * DAY) == 0 and bucket.start <= T0 < bucket.start + 7 * DAY


def test_bucket_bounds_are_enforced(channel: ChannelKeys) -> None:
    fid = field_id(channel, 1)
    with pytest.raises(BadRequest, match="buckets"):
        buckets(fid, 0, 365 * DAY, SECOND)
    with pytest.raises(BadRequest, match="after end"):
        buckets(fid, 10, 0, SECOND)
    with pytest.raises(BadRequest, match="zone"):
        buckets(fid, 0, DAY, HOUR, tz="Mars/Olympus")
    with pytest.raises(BadRequest):
        query.series(fid, 0, DAY, limit=0)


@pytest.mark.parametrize(
    ("span", "points", "width"),
    [
        (HOUR, 1000, 5 * SECOND),
        (DAY, 1000, 2 * MINUTE),
        (365 * DAY, 1000, 12 * HOUR),
        (7 * DAY, 24, 12 * HOUR),
        (10 * 365 * DAY, 10, 30 * DAY),
        (10, 5, SECOND),
    ],
)
def test_auto_every_picks_a_nice_width(span: int, points: int, width: int) -> None:
    assert auto_every(0, span, points) == width
    assert -(-span // width) <= points or width == 30 * DAY


def raw_buckets(fid: int, start: int, end: int, every: int, tz: str | None = None) -> list[Bucket]:
    """The same buckets straight from the readings, bypassing the rollups."""
    from fieldstation.points import get_zone

    plan = Plan.make(start, end, every, get_zone(tz))
    return [plan.bucket(k, p) for k, p in raw_partials(fid, start, end, plan)]


def test_rollups_agree_with_raw_and_follow_late_data(channel: ChannelKeys, app: Flask) -> None:
    from fieldstation import rollups

    base = T0 - T0 % DAY
    write(channel, *[Entry({1: float(i % 97)}, ts=base + i * 7 * MINUTE + 13 * SECOND) for i in range(1500)])
    fid = field_id(channel, 1)
    start, end = base + 5 * HOUR + 17 * SECOND, base + 7 * DAY - 3 * MINUTE
    cases = [(HOUR, None), (12 * HOUR, None), (DAY, None), (DAY, "Europe/Berlin"), (5 * MINUTE, None)]
    for every, tz in cases:
        assert buckets(fid, start, end, every, tz=tz) == raw_buckets(fid, start, end, every, tz)
    assert rollups.refresh() == 0  # the first query rebuilt every stale hour
    # Late data into an hour that is already rolled up, and a number turned into text.
    write(channel, Entry({1: 1000.0}, ts=base + DAY + 30 * SECOND), Entry({1: "gap"}, ts=base + 13 * SECOND))
    for every, tz in cases:
        assert buckets(fid, start - 6 * HOUR, end, every, tz=tz) == raw_buckets(
            fid, start - 6 * HOUR, end, every, tz
        )
    assert max(b.max or 0 for b in buckets(fid, base, end, DAY)) == 1000.0


def test_two_charts_refreshing_one_field_at_once(
    channel: ChannelKeys, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second refresher waits for the first, then finds nothing left to do; no duplicate slot.

    Found by a stress run on PostgreSQL: both deleted the old slots and both
    inserted the new ones, and the second chart got a 500 (pk_rollup_minute).
    """
    from fieldstation import rollups

    write(channel, *[Entry({1: float(i)}, ts=T0 + i * MINUTE) for i in range(180)])
    fid = field_id(channel, 1)
    rebuilt, go_on = threading.Event(), threading.Event()
    rebuild = rollups._rebuild

    def pausing_once(*args: Any) -> None:
        rebuild(*args)
        if not rebuilt.is_set():
            rebuilt.set()
            go_on.wait(10)

    monkeypatch.setattr(rollups, "_rebuild", pausing_once)
    first, first_out = in_thread(app, lambda: rollups.refresh(fid))
    assert rebuilt.wait(10)
    second, second_out = in_thread(app, lambda: rollups.refresh(fid))
    assert waits(second), "the second refresher must wait for the first"
    go_on.set()
    first.join(10)
    second.join(10)
    assert "error" not in first_out and "error" not in second_out, (first_out, second_out)
    assert first_out["result"] == 4  # hours 22:00 to 01:00
    assert rollups.refresh() == 0
    assert buckets(fid, T0, T0 + 3 * HOUR, HOUR) == raw_buckets(fid, T0, T0 + 3 * HOUR, HOUR)


def test_refresh_of_every_field_commits_field_by_field(
    channel: ChannelKeys, app: Flask, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A refresh after a bulk load holds its locks one field at a time: what is done stays done."""
    from fieldstation import rollups

    write(channel, *[Entry({1: float(i), 2: -float(i)}, ts=T0 + i * MINUTE) for i in range(90)])
    first, second = field_id(channel, 1), field_id(channel, 2)
    rebuild = rollups._rebuild

    def failing_on_second(fid: int, lo: int, hi: int) -> None:
        if fid == second:
            raise RuntimeError("disk full")
        rebuild(fid, lo, hi)

    monkeypatch.setattr(rollups, "_rebuild", failing_on_second)
    with pytest.raises(RuntimeError):
        rollups.refresh()
    monkeypatch.setattr(rollups, "_rebuild", rebuild)
    assert rollups.refresh(first) == 0  # committed before the second field failed
    assert rollups.refresh(second) == 2  # still marked: 22:00 and 23:00


def test_rollups_cli_rebuilds(channel: ChannelKeys, app: Flask) -> None:
    write(channel, *[Entry({1: float(i)}, ts=T0 + i * MINUTE) for i in range(120)])
    runner = app.test_cli_runner()
    assert "rebuilt" in runner.invoke(args=["rollups", "refresh"]).output
    result = runner.invoke(args=["rollups", "rebuild"])
    assert result.exit_code == 0, result.output
    fid = field_id(channel, 1)
    assert buckets(fid, T0, T0 + 2 * HOUR, HOUR) == raw_buckets(fid, T0, T0 + 2 * HOUR, HOUR)


def test_read_access_follows_can_read(app: Flask) -> None:
    """The one-statement access check of the read API answers exactly as auth.can_read."""
    from fieldstation import auth, manage
    from fieldstation.models import ApiKey, KeyKind

    alice, bob = make_user("alice"), make_user("bob")
    private = make_channel(alice.user, "private", fields=[f"f{i}" for i in range(1, 13)])
    public = make_channel(alice.user, "public", public=True)
    other = make_channel(bob.user, "other")
    revoked_raw = manage.create_key(alice.user, KeyKind.READ, channel=private.channel)[1]
    manage.revoke_key(auth.find_key(revoked_raw) or ApiKey())
    keys = [None, "", "NOSUCHKEY", alice.key, bob.key, revoked_raw]
    keys += [c.read_key for c in (private, public, other)] + [c.write_key for c in (private, public, other)]
    for channel in (private, public, other):
        for raw in keys:
            info = query.read_access(channel.id, raw)
            assert (info is not None) == auth.can_read(channel.channel, raw), (channel.channel.name, raw)
            if info is not None:
                assert (info.id, info.name, info.public) == (
                    channel.id,
                    channel.channel.name,
                    channel.channel.public,
                )
    assert query.read_access(999_999, alice.key) is None
    assert query.read_access(2**70, alice.key) is None
    everything = query.read_access(private.id, alice.key)
    assert everything is not None and [f.number for f in everything.fields] == list(range(1, 13))
    some = query.read_access(private.id, alice.key, (3, 9))
    assert some is not None and [(f.number, f.name) for f in some.fields] == [
        (n, f"f{n}") for n in range(3, 10)
    ]
    assert some.field(3) is not None and some.field(10) is None
    assert some.created_at.tzinfo is dt.UTC and some.created_at == private.channel.created_at


def test_text_readings_come_back_among_numbers(channel: ChannelKeys) -> None:
    """Texts are read apart from the numbers (see SeriesRows); every reading still comes back in order."""
    write(channel, *[Entry({1: float(i) if i % 3 else f"t{i}"}, ts=T0 + i * SECOND) for i in range(9)])
    fid = field_id(channel, 1)
    got = query.series(fid, T0, T0 + 9 * SECOND, limit=100)
    assert [(p.value, p.text) for p in got] == [
        (None, f"t{i}") if i % 3 == 0 else (float(i), None) for i in range(9)
    ]
    down = query.series(fid, T0, T0 + 9 * SECOND, limit=4, descending=True)
    assert [p.text or p.value for p in down] == [8.0, 7.0, "t6", 5.0]
    rows = query.series_rows(fid, T0, T0 + 9 * SECOND, limit=100)
    assert rows.texts == {T0: "t0", T0 + 3 * SECOND: "t3", T0 + 6 * SECOND: "t6"}


def test_latest_entry_of_a_wide_channel_has_every_value(app: Flask) -> None:
    wide = make_channel(make_user().user, "wide", fields=[f"f{i}" for i in range(1, 31)])
    store.write(Batch(wide.id, [Entry({n: float(n) for n in range(1, 31)}, ts=T0)]))
    store.write(Batch(wide.id, [Entry({n: n + 0.5 for n in range(1, 31, 2)}, ts=T0 + SECOND)]))
    last = query.latest_entry(wide.id)
    assert last is not None and last.values == {n: n + 0.5 for n in range(1, 31, 2)}
    rows = query.entries(wide.id, None, None, limit=5)
    assert rows[0].values == {n: float(n) for n in range(1, 31)}


def test_sums_beyond_the_float_range_are_infinite_not_a_failure(channel: ChannelKeys, app: Flask) -> None:
    """Two readings of 1e308 in one minute: PostgreSQL's float8 sum raised, and every chart was a 500."""
    from fieldstation import rollups

    base = T0 - T0 % DAY
    write(
        channel,
        Entry({1: 1e308}, ts=base + SECOND),
        Entry({1: 1e308}, ts=base + 2 * SECOND),
        Entry({1: 1e200}, ts=base + 2 * HOUR),
        Entry({1: 3e200}, ts=base + 2 * HOUR + SECOND),
        Entry({1: -1.5e308}, ts=base + 3 * HOUR),
        Entry({1: 0.1}, ts=base + 4 * HOUR),
        Entry({1: 0.2}, ts=base + 4 * HOUR + SECOND),
    )
    fid = field_id(channel, 1)
    hourly = buckets(fid, base, base + DAY, HOUR)  # refreshes the rollups first
    assert rollups.refresh() == 0
    assert [(b.start, b.count, b.sum) for b in hourly] == [
        (base, 2, float("inf")),
        (base + 2 * HOUR, 2, 4e200),
        (base + 3 * HOUR, 1, -1.5e308),
        (base + 4 * HOUR, 2, 0.1 + 0.2),  # every bit, as the floats add (not 0.3)
    ]
    assert hourly == raw_buckets(fid, base, base + DAY, HOUR)
    assert buckets(fid, base, base + DAY, DAY)[0].sum == float("inf")
    assert query.medians(fid, base, base + DAY, HOUR) == [
        (base, 1e308),
        (base + 2 * HOUR, 2e200),
        (base + 3 * HOUR, -1.5e308),
        (base + 4 * HOUR, 0.1 / 2 + 0.2 / 2),
    ]


_ROLLUP_EXAMPLES = itertools.count()


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    readings=st.lists(
        st.tuples(
            st.integers(min_value=0, max_value=2 * 24 * 60 * 4).map(lambda q: q * 15 * SECOND),
            st.one_of(st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.just("open")),
        ),
        min_size=1,
        max_size=200,
        unique_by=lambda r: r[0],
    ),
    every=st.sampled_from([MINUTE, 5 * MINUTE, HOUR, 3 * HOUR, DAY]),
    edges=st.tuples(st.integers(0, 6 * HOUR), st.integers(0, 6 * HOUR)),
)
def test_rollups_agree_with_raw_for_any_readings(
    app: Flask, readings: list[tuple[int, float | str]], every: int, edges: tuple[int, int]
) -> None:
    """Sparse, dense and text readings: buckets from rollups (some slots of one reading) equal raw ones."""
    keys = make_channel(make_user(f"r{next(_ROLLUP_EXAMPLES)}").user)
    base = T0 - T0 % DAY
    write(keys, *[Entry({1: value}, ts=base + ts) for ts, value in readings])
    fid = field_id(keys, 1)
    start, end = base - edges[0], base + 2 * DAY + edges[1]
    assert_same_sums(buckets(fid, start, end, every), raw_buckets(fid, start, end, every))


def assert_same_sums(got: list[Bucket], want: list[Bucket]) -> None:
    """Equal buckets, their sums and means to rounding: rollups add slot sums, an order of their own
    (1048575.4864038955 against …957)."""
    assert [dataclasses.replace(b, sum=None, avg=None) for b in got] == [
        dataclasses.replace(b, sum=None, avg=None) for b in want
    ]
    for a, b in zip(got, want, strict=True):
        for mine, theirs in ((a.sum, b.sum), (a.avg, b.avg)):
            assert (mine is None) == (theirs is None)
            assert mine is None or mine == pytest.approx(theirs, rel=1e-12, abs=1e-6)
