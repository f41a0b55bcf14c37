"""store.write: the one door for readings — idempotent, all-or-nothing, never losing a server stamp."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from flask import Flask

from fieldstation import db as database
from fieldstation import manage, store
from fieldstation.errors import BadRequest, NotFound, RateLimited
from fieldstation.extensions import db
from fieldstation.points import Batch, Entry


def readings(channel_id: int) -> list[tuple[int, int, float | None, str | None]]:
    rows = db.session.execute(
        sa.text(
            "SELECT f.number, r.ts, r.value, r.text FROM readings r JOIN fields f ON f.id = r.field_id "
            "WHERE f.channel_id = :c ORDER BY r.ts, f.number"
        ),
        {"c": channel_id},
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def entries(channel_id: int) -> list[tuple[int, int, str | None]]:
    rows = db.session.execute(
        sa.text("SELECT entry_id, ts, status FROM entries WHERE channel_id = :c ORDER BY entry_id"),
        {"c": channel_id},
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_write_assigns_entry_ids_and_stores_values(channel) -> None:  # type: ignore[no-untyped-def]
    result = store.write(
        Batch(
            channel.id,
            [Entry({1: 21.5, 2: 55.0}, ts=1_000_000, status="ok"), Entry({1: 22.0}, ts=2_000_000)],
        )
    )
    assert [e.entry_id for e in result.entries] == [1, 2]
    assert result.points == 3 and result.created == 2
    assert readings(channel.id) == [
        (1, 1_000_000, 21.5, None),
        (2, 1_000_000, 55.0, None),
        (1, 2_000_000, 22.0, None),
    ]
    assert entries(channel.id) == [(1, 1_000_000, "ok"), (2, 2_000_000, None)]


def test_rewrite_is_idempotent(channel) -> None:  # type: ignore[no-untyped-def]
    batch = Batch(channel.id, [Entry({1: 1.0}, ts=5_000_000)])
    first = store.write(batch)
    again = store.write(Batch(channel.id, [Entry({1: 2.0}, ts=5_000_000), Entry({1: 3.0}, ts=6_000_000)]))
    assert [e.entry_id for e in again.entries] == [first.entries[0].entry_id, 2]
    assert [e.created for e in again.entries] == [False, True]
    assert readings(channel.id) == [(1, 5_000_000, 2.0, None), (1, 6_000_000, 3.0, None)]
    db.session.expire_all()
    assert manage.channel_for(channel.channel.owner, channel.id).last_entry_id == 2  # no gap


def test_backfill_older_than_newest_is_stored(channel) -> None:  # type: ignore[no-untyped-def]
    store.write(Batch(channel.id, [Entry({1: 1.0}, ts=10_000_000)]))
    store.write(Batch(channel.id, [Entry({1: 0.5}, ts=1_000_000)]))
    assert [r[1] for r in readings(channel.id)] == [1_000_000, 10_000_000]


def test_server_stamps_never_collide(channel) -> None:  # type: ignore[no-untyped-def]
    now = 1_700_000_000_000_000
    store.write(Batch(channel.id, [Entry({1: 1.0}, ts=now)]))
    result = store.write(Batch(channel.id, [Entry({1: 2.0}), Entry({1: 3.0})]), now=now)
    assert [e.ts for e in result.entries] == [now + 1, now + 2]
    assert [r[2] for r in readings(channel.id)] == [1.0, 2.0, 3.0]


def test_text_values_are_kept(channel) -> None:  # type: ignore[no-untyped-def]
    store.write(Batch(channel.id, [Entry({1: "open", 2: 3.0}, ts=1)]))
    assert readings(channel.id) == [(1, 1, None, "open"), (2, 1, 3.0, None)]


def test_unknown_field_writes_nothing(channel) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadRequest, match="no field 9"):
        store.write(Batch(channel.id, [Entry({1: 1.0}, ts=1), Entry({9: 1.0}, ts=2)]))
    assert readings(channel.id) == [] and entries(channel.id) == []
    db.session.expire_all()
    assert manage.channel_for(channel.channel.owner, channel.id).last_entry_id == 0


def test_unknown_channel(app: Flask) -> None:
    with pytest.raises(NotFound):
        store.write(Batch(424242, [Entry({1: 1.0})]))


def test_rate_limit(channel) -> None:  # type: ignore[no-untyped-def]
    manage.update_channel(channel.channel, min_interval_s=15)
    store.write(Batch(channel.id, [Entry({1: 1.0})]), now=100_000_000)
    with pytest.raises(RateLimited):
        store.write(Batch(channel.id, [Entry({1: 2.0})]), now=110_000_000)
    store.write(Batch(channel.id, [Entry({1: 3.0})]), now=115_000_000)
    assert [r[2] for r in readings(channel.id)] == [1.0, 3.0]


def test_empty_batch_is_refused(channel) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadRequest):
        store.write(Batch(channel.id, []))


def test_duplicate_timestamps_in_one_batch_merge(channel) -> None:  # type: ignore[no-untyped-def]
    result = store.write(Batch(channel.id, [Entry({1: 1.0}, ts=7), Entry({2: 2.0}, ts=7)]))
    assert [e.entry_id for e in result.entries] == [1, 1]
    assert readings(channel.id) == [(1, 7, 1.0, None), (2, 7, 2.0, None)]
    assert entries(channel.id) == [(1, 7, None)]


def test_large_batches_rewrite_and_merge(channel) -> None:  # type: ignore[no-untyped-def]
    """Batches big enough for PostgreSQL's COPY path behave like small ones (issue #3)."""
    first = store.write(Batch(channel.id, [Entry({1: float(i)}, ts=i) for i in range(1, 501)]))
    assert first.created == 500 and [e.entry_id for e in first.entries] == list(range(1, 501))
    # Rewrite half of them, add 500 new ones, and give one timestamp twice: the later value wins.
    rewrite = [Entry({1: -float(i), 2: "t"}, ts=i, status="again") for i in range(251, 1001)]
    rewrite.append(Entry({1: 42.0}, ts=1000))
    second = store.write(Batch(channel.id, rewrite))
    assert second.created == 501 and second.points == 1501  # the repeated timestamp counts in batch order
    assert [e.entry_id for e in second.entries[:2]] == [251, 252]
    assert second.entries[-1].entry_id == second.entries[-2].entry_id == 1000
    rows = readings(channel.id)
    values = {(number, ts): (value, text) for number, ts, value, text in rows}
    assert len(rows) == 1000 + 750
    assert values[(1, 250)] == (250.0, None) and values[(1, 251)] == (-251.0, None)
    assert values[(2, 600)] == (None, "t") and values[(1, 1000)] == (42.0, None)
    assert [e[2] for e in entries(channel.id)][249:251] == [None, "again"]
    db.session.expire_all()
    assert manage.channel_for(channel.channel.owner, channel.id).last_entry_id == 1000


def test_stamped_entries_in_a_large_batch_skip_taken_microseconds(channel) -> None:  # type: ignore[no-untyped-def]
    now = 1_700_000_000_000_000
    store.write(Batch(channel.id, [Entry({1: 0.0}, ts=now + 1)]))
    result = store.write(Batch(channel.id, [Entry({1: float(i)}) for i in range(300)]), now=now)
    stamps = [e.ts for e in result.entries]
    assert len(set(stamps)) == 300 and now + 1 not in stamps and stamps[0] == now


def test_driver_errors_surface_as_sqlalchemy_errors(app: Flask) -> None:
    """The fixed-SQL path raises SQLAlchemy's exception classes, which callers (the MQTT worker) rely on."""
    from sqlalchemy.exc import OperationalError

    dialect = db.engine.dialect
    connection = db.session.connection()
    with pytest.raises(OperationalError), database.driver_errors(connection):
        raise dialect.loaded_dbapi.OperationalError("simulated outage")


def test_writes_mark_rollup_hours_stale(channel) -> None:  # type: ignore[no-untyped-def]
    """Both write paths (own connection and session) mark the touched (field, hour) slots (#4)."""
    hour = 3_600_000_000
    store.write(Batch(channel.id, [Entry({1: 1.0, 2: 2.0}, ts=5 * hour + 7)]))
    store.write(Batch(channel.id, [Entry({1: 3.0}, ts=5 * hour + 8), Entry({1: 4.0}, ts=9 * hour)]))
    db.session.rollback()
    marks = db.session.execute(
        sa.text(
            "SELECT f.number, d.ts, d.gen FROM rollup_dirty d JOIN fields f "
            "ON f.id = d.field_id ORDER BY f.number, d.ts"
        )
    ).all()
    assert [tuple(m) for m in marks] == [(1, 5 * hour, 2), (1, 9 * hour, 1), (2, 5 * hour, 1)]


# -- batches in series form, and rows prepared before the write lock (#3) ----------------------


def test_series_batches_store_what_entries_would(channel) -> None:  # type: ignore[no-untyped-def]
    """Line protocol's form (values by field and time) stores and numbers entries the same way."""
    series = {1: {2_000_000: 22.0, 1_000_000: 21.5}, 2: {1_000_000: "open"}}
    result = store.write(Batch.of_series(channel.id, [2_000_000, 1_000_000], series))
    assert [(e.entry_id, e.ts) for e in result.entries] == [(1, 2_000_000), (2, 1_000_000)]
    assert result.points == 3 and result.created == 2
    assert readings(channel.id) == [
        (1, 1_000_000, 21.5, None),
        (2, 1_000_000, None, "open"),
        (1, 2_000_000, 22.0, None),
    ]
    again = store.write(Batch.of_series(channel.id, [1_000_000], {2: {1_000_000: 5.0}}))
    assert [(e.entry_id, e.created) for e in again.entries] == [(2, False)]
    assert readings(channel.id)[1] == (2, 1_000_000, 5.0, None)  # a number replaces the text


def test_series_without_timestamps_share_one_server_stamp(channel) -> None:  # type: ignore[no-untyped-def]
    now = 1_700_000_000_000_000
    store.write(Batch(channel.id, [Entry({1: 0.0}, ts=now)]))
    result = store.write(Batch.of_series(channel.id, [None], {1: {None: 1.0}, 2: {None: 2.0}}), now=now)
    assert [e.ts for e in result.entries] == [now + 1]
    assert readings(channel.id) == [(1, now, 0.0, None), (1, now + 1, 1.0, None), (2, now + 1, 2.0, None)]


def test_series_with_an_unknown_field_writes_nothing(channel) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(BadRequest, match="no field 9"):
        store.write(Batch.of_series(channel.id, [1], {1: {1: 1.0}, 9: {1: 2.0}}))
    assert readings(channel.id) == [] and entries(channel.id) == []


def test_series_batches_mark_rollup_hours_stale(channel) -> None:  # type: ignore[no-untyped-def]
    hour = 3_600_000_000
    times = [5 * hour, 5 * hour + 1, 7 * hour]
    store.write(Batch.of_series(channel.id, times, {1: dict.fromkeys(times, 1.0), 2: {7 * hour: 2.0}}))
    db.session.rollback()
    marks = db.session.execute(
        sa.text("SELECT f.number, d.ts FROM rollup_dirty d JOIN fields f ON f.id = d.field_id")
    ).all()
    assert sorted(tuple(m) for m in marks) == [(1, 5 * hour), (1, 7 * hour), (2, 7 * hour)]


def test_rows_prepared_before_the_lock_follow_field_changes(channel, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A batch's rows are built before the write lock; if the channel's fields change meanwhile
    (another writer drops and re-adds field 2 under a new id), the write uses the new ids."""
    prepare = store._prepare
    raced: list[int] = []

    def prepare_while_fields_change(batch: Batch, field_ids: dict[int, int]) -> object:
        prepared = prepare(batch, field_ids)
        if not raced:
            manage.add_field(channel.channel, "pressure")  # so that SQLite cannot reuse the dropped id
            manage.delete_field(manage.get_field(channel.channel, 2))
            raced.append(manage.add_field(channel.channel, "humidity", number=2).number)
        return prepared

    monkeypatch.setattr(store, "_prepare", prepare_while_fields_change)
    # Large enough to be prepared before the lock (smaller batches are built under it).
    more = [Entry({1: float(i)}, ts=100 + i) for i in range(store._PREPARE_MIN_POINTS)]
    batch = Batch(channel.id, [Entry({1: 1.0, 2: 2.0}, ts=10), Entry({2: 3.0}, ts=11), *more])
    db.session.commit()  # an idle session: the write prepares, then takes the lock on its own connection
    store.write(batch)
    assert raced == [2]
    stored = readings(channel.id)
    assert [r for r in stored if r[0] == 2] == [(2, 10, 2.0, None), (2, 11, 3.0, None)]
    assert len(stored) == 3 + store._PREPARE_MIN_POINTS


def test_many_rows_go_in_statements_of_many_rows_in_order(channel) -> None:  # type: ignore[no-untyped-def]
    """SQLite takes rows as multi-row INSERTs of up to 999 parameters; order across them holds."""
    batch = [Entry({1: float(i), 2: -float(i)}, ts=i) for i in range(1, 701)]
    batch.append(Entry({1: 5000.0}, ts=5))  # the same key again, in a later statement
    result = store.write(Batch(channel.id, batch))
    assert result.points == 1401 and [e.entry_id for e in result.entries[-2:]] == [700, 5]
    values = {(number, ts): value for number, ts, value, _ in readings(channel.id)}
    assert len(values) == 1400 and values[(1, 5)] == 5000.0 and values[(2, 700)] == -700.0
    assert [e[0] for e in entries(channel.id)] == list(range(1, 701))


def test_a_new_batch_written_again_stores_no_duplicates(channel, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A batch newer than anything stored (PostgreSQL: COPYed straight into readings) retried as is (#3)."""
    copied: list[int] = []
    original = store._copy_new_readings
    monkeypatch.setattr(
        store,
        "_copy_new_readings",
        lambda cur, numeric, rows: copied.append(len(rows)) or original(cur, numeric, rows),
    )
    series = {1: {ts: float(ts) for ts in range(1, 301)}, 2: {ts: "x" for ts in range(1, 301)}}
    first = store.write(Batch.of_series(channel.id, range(1, 301), series))
    entries_batch = Batch(channel.id, [Entry({1: -float(ts)}, ts=ts) for ts in range(301, 601)])
    store.write(entries_batch)
    assert copied == ([600, 300] if db.engine.dialect.name == "postgresql" else [])
    again = store.write(Batch.of_series(channel.id, range(1, 301), series))
    store.write(entries_batch)
    assert len(copied) == (2 if db.engine.dialect.name == "postgresql" else 0)  # the retries merged
    assert first.created == 300 and again.created == 0
    assert [e.entry_id for e in again.entries] == [e.entry_id for e in first.entries]
    rows = readings(channel.id)
    assert len(rows) == 900 and len({(r[0], r[1]) for r in rows}) == 900
    assert rows[:2] == [(1, 1, 1.0, None), (2, 1, None, "x")] and rows[-1] == (1, 600, -600.0, None)
    assert len(entries(channel.id)) == 600


def test_a_reading_without_its_entry_does_not_break_a_new_batch(channel) -> None:  # type: ignore[no-untyped-def]
    """Should a reading exist where no entry does, the batch still stores, merging (#3)."""
    field_id = db.session.scalar(
        sa.text("SELECT id FROM fields WHERE channel_id = :c AND number = 1"), {"c": channel.id}
    )
    db.session.execute(
        sa.text("INSERT INTO readings (field_id, ts, value) VALUES (:f, 250, -1.0)"), {"f": field_id}
    )
    db.session.commit()
    result = store.write(Batch(channel.id, [Entry({1: float(ts)}, ts=ts) for ts in range(1, 301)]))
    assert result.created == 300
    rows = readings(channel.id)
    assert len(rows) == 300 and (1, 250, 250.0, None) in rows
