"""Deleting a field, a channel or a user deletes its data, and a write racing a deletion leaves none.

On PostgreSQL readings and entries have no foreign keys (models.readings): triggers
cascade the deletes, and writes lock the channel row and then the field rows. The
race tests hold one side of that protocol open on a second connection and check
that no reading outlives its field, whichever side takes the lock first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
import sqlalchemy as sa
from flask import Flask

from fieldstation import ingest, manage, store
from fieldstation.auth import hash_key
from fieldstation.errors import BadRequest
from fieldstation.extensions import db
from fieldstation.points import Batch, Entry
from tests.concurrency import in_thread, waits
from tests.factories import ChannelKeys, make_channel, make_user


def count(sql: str, **params: object) -> int:
    return int(db.session.execute(sa.text(sql), params).scalar_one())


def readings_of(field_id: int) -> int:
    return count("SELECT count(*) FROM readings WHERE field_id = :f", f=field_id)


def entries_of(channel_id: int) -> int:
    return count("SELECT count(*) FROM entries WHERE channel_id = :c", c=channel_id)


def field_ids(channel_id: int) -> list[int]:
    rows = db.session.execute(
        sa.text("SELECT id FROM fields WHERE channel_id = :c ORDER BY number"), {"c": channel_id}
    )
    return [int(r[0]) for r in rows]


def fill(channel_id: int, entries: int = 3) -> None:
    store.write(
        Batch(
            channel_id, [Entry({1: float(i), 2: -float(i)}, ts=(i + 1) * 1_000_000) for i in range(entries)]
        )
    )


@pytest.fixture
def two(app: Flask) -> tuple[ChannelKeys, ChannelKeys]:
    """Two channels of two users, each with two fields and three entries."""
    first = make_channel(make_user("alice").user, "weather")
    second = make_channel(make_user("bob").user, "garden")
    fill(first.id)
    fill(second.id)
    return first, second


def test_deleting_a_field_deletes_its_readings_only(two: tuple[ChannelKeys, ChannelKeys]) -> None:
    first, second = two
    humidity, temperature = field_ids(first.id)[1], field_ids(first.id)[0]
    manage.delete_field(manage.get_field(first.channel, 2))
    assert readings_of(humidity) == 0
    assert readings_of(temperature) == 3
    assert entries_of(first.id) == 3
    assert sum(readings_of(f) for f in field_ids(second.id)) == 6


def test_deleting_a_channel_deletes_its_entries_and_readings(two: tuple[ChannelKeys, ChannelKeys]) -> None:
    first, second = two
    fields = field_ids(first.id)
    manage.delete_channel(first.channel)
    assert entries_of(first.id) == 0
    assert sum(readings_of(f) for f in fields) == 0
    assert count("SELECT count(*) FROM readings") == 6
    assert entries_of(second.id) == 3


def test_deleting_a_user_deletes_the_data_of_their_channels(two: tuple[ChannelKeys, ChannelKeys]) -> None:
    first, second = two
    fields = field_ids(first.id)
    db.session.delete(first.channel.owner)
    db.session.commit()
    assert entries_of(first.id) == 0
    assert sum(readings_of(f) for f in fields) == 0
    assert entries_of(second.id) == 3 and count("SELECT count(*) FROM readings") == 6


# -- races (PostgreSQL: two connections; SQLite has one writer and its foreign keys) -------------


#: The race tests run on PostgreSQL only: SQLite takes one writer at a time and keeps its foreign keys.
on_postgres = pytest.mark.parametrize("engine_name", ["postgres"])


@pytest.fixture
def pg(app: Flask) -> Iterator[psycopg.Connection[Any]]:
    """A second connection to the test database, outside the app's pool."""
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url) as conn:
        yield conn


def batch(channel_id: int, numbers: tuple[int, ...], points: int) -> Batch:
    """A batch large enough for COPY (store._COPY_MIN), new timestamps."""
    return Batch(
        channel_id, [Entry({n: float(i) for n in numbers}, ts=10**12 + i * 1_000_000) for i in range(points)]
    )


def delete_during_write(
    app: Flask,
    channel_id: int,
    pg: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    delete: str,
    row: int,
) -> None:
    """Run ``delete`` (of ``row``) on the second connection while a 300-entry batch holds its locks.

    The write is held just after its locks are taken (before its entries); the
    deletion must then wait for it, and both must finish without an error.
    """
    locked, go_on = threading.Event(), threading.Event()
    insert_entries = store._insert_entries

    def pausing(*args: Any, **kwargs: Any) -> Any:
        locked.set()
        go_on.wait(10)
        return insert_entries(*args, **kwargs)

    monkeypatch.setattr(store, "_insert_entries", pausing)
    writer, wrote = in_thread(app, lambda: store.write(batch(channel_id, (1, 2), 300)))
    assert locked.wait(10)
    deleter = threading.Thread(target=lambda: (pg.execute(delete, (row,)), pg.commit()))
    deleter.start()
    assert waits(deleter), "the deletion must wait for the write holding the row"
    go_on.set()
    writer.join(10)
    deleter.join(10)
    assert "error" not in wrote and not deleter.is_alive()
    db.session.remove()


@on_postgres
@pytest.mark.parametrize("table", ["fields", "channels"])
def test_a_row_deleted_during_a_batch_takes_the_batch_data_with_it(
    app: Flask,
    two: tuple[ChannelKeys, ChannelKeys],
    pg: psycopg.Connection[Any],
    monkeypatch: pytest.MonkeyPatch,
    table: str,
) -> None:
    first, _ = two
    temperature, humidity = field_ids(first.id)
    row = humidity if table == "fields" else first.id
    delete_during_write(app, first.id, pg, monkeypatch, f"DELETE FROM {table} WHERE id = %s", row)
    assert readings_of(humidity) == 0
    if table == "fields":
        assert readings_of(temperature) == 303 and entries_of(first.id) == 303
    else:
        assert readings_of(temperature) == 0 and entries_of(first.id) == 0


def write_while_a_field_is_deleted(
    app: Flask, first: ChannelKeys, pg: psycopg.Connection[Any], work: Callable[[], object]
) -> dict[str, object]:
    """Run ``work`` while the second connection deletes field 2 (committed once the write waits).

    Returns what ``work`` returned or raised; checks that nothing of it was stored.
    """
    humidity = field_ids(first.id)[1]
    pg.execute("DELETE FROM fields WHERE id = %s", (humidity,))  # not committed yet: the row stays locked
    writer, wrote = in_thread(app, work)
    assert waits(writer), "the write must wait for the deletion holding the field"
    pg.commit()
    writer.join(10)
    db.session.remove()
    assert readings_of(humidity) == 0
    assert entries_of(first.id) == 3 and readings_of(field_ids(first.id)[0]) == 3
    return wrote


@on_postgres
def test_a_batch_waiting_on_a_field_being_deleted_is_refused_whole(
    app: Flask, two: tuple[ChannelKeys, ChannelKeys], pg: psycopg.Connection[Any]
) -> None:
    first, _ = two
    wrote = write_while_a_field_is_deleted(app, first, pg, lambda: store.write(batch(first.id, (1, 2), 300)))
    assert isinstance(wrote.get("error"), BadRequest)


@on_postgres
def test_a_single_reading_waiting_on_a_field_being_deleted_stores_nothing(
    app: Flask, two: tuple[ChannelKeys, ChannelKeys], pg: psycopg.Connection[Any]
) -> None:
    """The one-statement write (ingest.write_single) aborts and leaves the refusal to the ordinary path."""
    first, _ = two
    key = hash_key(first.write_key)
    wrote = write_while_a_field_is_deleted(
        app, first, pg, lambda: ingest.write_single(key, None, Entry({1: 1.0, 2: 2.0}))
    )
    assert wrote.get("result") == ingest.RETRY_ORDINARY, wrote


@on_postgres
def test_postgresql_schema_cascades_by_trigger(app: Flask, pg: psycopg.Connection[Any]) -> None:
    """The foreign keys are gone from the two big tables (the point of it) and the triggers are there."""
    keys = pg.execute(
        "SELECT conrelid::regclass::text FROM pg_constraint WHERE contype = 'f' "
        "AND conrelid::regclass::text IN ('readings', 'entries')"
    ).fetchall()
    triggers = pg.execute("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal ORDER BY tgname").fetchall()
    assert keys == []
    assert [t for (t,) in triggers] == ["channels_delete_entries", "fields_delete_readings"]
