"""The migrations are the schema: round trips on both engines, and models agree with them."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from fieldstation import manage, store
from fieldstation.extensions import db
from fieldstation.models import Base, User
from fieldstation.models.base import in_schema_of
from fieldstation.points import Batch, Entry
from tests.conftest import ENGINES, make_app, reset_schema
from tests.factories import make_channel


@pytest.fixture(params=ENGINES)
def fresh_app(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """An app on an empty database (not the shared migrated one)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'fresh.db'}"
    else:
        base = request.getfixturevalue("postgres_server")
        engine = sa.create_engine(base, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(sa.text("DROP DATABASE IF EXISTS fieldstation_migrations"))
            conn.execute(sa.text("CREATE DATABASE fieldstation_migrations"))
        engine.dispose()
        url = base.rsplit("/", 1)[0] + "/fieldstation_migrations"
        reset_schema(url)
    app = make_app(url, tmp_path / "instance")
    with app.app_context():
        yield app
        db.session.remove()
        db.engine.dispose()


def old_channel(name: str) -> int:
    """A channel with field 1 under an earlier revision (the models have columns it lacks)."""
    owner = old_user("alice").id
    stamp = "2026-01-01 00:00:00"
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO channels (owner_id, name, description, public, last_entry_id, min_interval_s,"
                " created_at, updated_at) VALUES (:o, :n, '', false, 0, 0, :t, :t)"
            ),
            {"o": owner, "n": name, "t": stamp},
        )
        channel_id = int(
            conn.execute(sa.text("SELECT id FROM channels WHERE name = :n"), {"n": name}).scalar_one()
        )
        conn.execute(
            sa.text(
                "INSERT INTO fields (channel_id, number, name, created_at) VALUES (:c, 1, 'temperature', :t)"
            ),
            {"c": channel_id, "t": stamp},
        )
    return channel_id


def table_names() -> set[str]:
    return set(sa.inspect(db.engine).get_table_names())


def test_upgrade_downgrade_upgrade(fresh_app) -> None:  # type: ignore[no-untyped-def]
    upgrade()
    assert {t.name for t in Base.metadata.sorted_tables} <= table_names()
    downgrade(revision="base")
    assert table_names() <= {"alembic_version"}
    upgrade()
    assert {"readings", "entries", "channels"} <= table_names()


def test_a_step_down_and_up_keeps_the_data(fresh_app) -> None:  # type: ignore[no-untyped-def]
    """Each migration's downgrade keeps what the earlier schema can hold. On SQLite a table that
    Alembic's batch mode copies and drops deletes, with foreign keys on, every row that refers to it."""
    upgrade()
    owner = manage.create_user("alice", "long-enough-pw")
    keys = make_channel(owner, "weather")
    store.write(Batch(keys.id, [Entry({1: 21.5})]))
    from fieldstation import rollups

    rollups.refresh()  # a slot of one reading: 0006's downgrade fills its min, max, first, last
    db.session.remove()
    counts = (
        "SELECT (SELECT count(*) FROM channels), (SELECT count(*) FROM api_keys),"
        " (SELECT count(*) FROM readings), (SELECT count(*) FROM rollup_minute WHERE min = 21.5)"
    )
    with db.engine.connect() as conn:
        before = tuple(conn.exec_driver_sql(counts).one())
    assert before == (1, 2, 1, 0)
    downgrade(revision="0006_compact_rollup_slots")
    with db.engine.connect() as conn:
        assert tuple(conn.exec_driver_sql(counts).one()) == before
    for revision in ("0005_reading_blocks", "0004_sign_in_guard", "0003_pg_cascade_triggers", "0002_rollups"):
        downgrade(revision=revision)
        with db.engine.connect() as conn:
            assert tuple(conn.exec_driver_sql(counts).one()) == (*before[:3], 1), revision
    upgrade()
    assert manage.authenticate("alice", "long-enough-pw") is not None


# The md5 index on PostgreSQL's field names (0008) is an expression, which Alembic cannot compare.
@pytest.mark.filterwarnings("ignore:autogenerate skipping metadata-specified expression-based index")
def test_models_match_migrations(fresh_app) -> None:  # type: ignore[no-untyped-def]
    upgrade()
    with db.engine.connect() as conn:

        def include(obj, *_: object) -> bool:  # as migrations/env.py compares
            return in_schema_of(obj, conn.dialect.name)

        context = MigrationContext.configure(conn, opts={"compare_type": True, "include_object": include})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_readings_are_clustered(fresh_app) -> None:  # type: ignore[no-untyped-def]
    """The hot range read is one index scan: WITHOUT ROWID on SQLite, covering PK on PostgreSQL."""
    upgrade()
    with db.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            for table in ("readings", "rollup_minute", "rollup_hour", "rollup_day"):  # 0006 rebuilt rollups
                sql = conn.exec_driver_sql(f"SELECT sql FROM sqlite_master WHERE name = '{table}'").scalar()
                assert "WITHOUT ROWID" in str(sql), table
        else:
            index = conn.exec_driver_sql(
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'pk_readings'"
            ).scalar()
            assert "INCLUDE (value)" in str(index)


def test_upgrading_to_read_blocks_marks_every_hour_with_readings(fresh_app) -> None:  # type: ignore[no-untyped-def]
    """Migration 0005: a clean hour without a block must hold no readings, so existing hours are marked."""
    from fieldstation import query, rollups

    upgrade(revision="0004_sign_in_guard")
    channel_id, hour = old_channel("weather"), 3_600_000_000
    with db.engine.begin() as conn:  # readings as 0004 stored them, after a refresh: no hour is marked
        field_id = conn.execute(
            sa.text("SELECT id FROM fields WHERE channel_id = :c"), {"c": channel_id}
        ).scalar()
        for i in range(5):
            conn.execute(
                sa.text("INSERT INTO readings (field_id, ts, value) VALUES (:f, :t, :v)"),
                {"f": field_id, "t": 1_700_000_000_000_000 + i * hour, "v": float(i)},
            )
    db.session.remove()
    upgrade()
    field = query.field_of(channel_id, 1)
    assert field is not None
    window = (1_700_000_000_000_000 - hour, 1_700_000_000_000_000 + 10 * hour)
    assert [v for _, v in query.series_rows(field.id, *window, limit=1000).pairs] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert rollups.refresh() == 5
    assert [v for _, v in query.series_rows(field.id, *window, limit=1000).pairs] == [0.0, 1.0, 2.0, 3.0, 4.0]


def test_upgrading_compacts_slots_of_one_reading(fresh_app) -> None:  # type: ignore[no-untyped-def]
    """Migration 0006 empties min, max, first and last of slots whose sum is their one reading."""
    upgrade(revision="0005_reading_blocks")
    channel_id = old_channel("weather")
    db.session.remove()
    slots = [(1, 2.5, 2.5, 2.5, 2.5, 2.5), (2, 5.0, 2.0, 3.0, 2.0, 3.0), (1, 0.5, 0.5, 0.5, 0.5, 0.5)]
    with db.engine.begin() as conn:
        field_id = conn.exec_driver_sql(
            f"SELECT id FROM fields WHERE channel_id = {channel_id} AND number = 1"
        ).scalar()
        for minute, slot in enumerate(slots):
            values = ", ".join(map(str, (field_id, minute * 60_000_000, *slot)))
            conn.exec_driver_sql(f"INSERT INTO rollup_minute VALUES ({values})")
    upgrade()
    with db.engine.connect() as conn:
        rows = conn.exec_driver_sql(
            "SELECT n, sum, min, max, first, last FROM rollup_minute ORDER BY ts"
        ).all()
    assert [tuple(r) for r in rows] == [
        (1, 2.5, None, None, None, None),
        (2, 5.0, 2.0, 3.0, 2.0, 3.0),
        (1, 0.5, None, None, None, None),
    ]


def old_user(name: str) -> Any:
    """A user made in an older schema, by SQL: the User model has columns later migrations add."""
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO users (username, password_hash, is_admin, created_at)"
                " VALUES (:name, 'x', false, CURRENT_TIMESTAMP)"
            ),
            {"name": name},
        )
        user_id = conn.execute(
            sa.text("SELECT id FROM users WHERE username = :name"), {"name": name}
        ).scalar()
    return SimpleNamespace(id=user_id)


def test_channel_ids_are_never_reused_and_the_upgrade_keeps_everything(fresh_app) -> None:  # type: ignore[no-untyped-def]
    """Migration 0011 rebuilds SQLite's channels with AUTOINCREMENT; nothing hanging off them is lost."""
    upgrade(revision="0010_channel_meta")
    owner = old_user("alice")
    with db.engine.begin() as conn:
        for name in ("one", "two"):
            conn.execute(
                sa.text(
                    "INSERT INTO channels (owner_id, name, description, public, last_entry_id,"
                    " min_interval_s, created_at, updated_at)"
                    " VALUES (:owner, :name, '', false, 1, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                ),
                {"owner": owner.id, "name": name},
            )
        ids = [r[0] for r in conn.execute(sa.text("SELECT id FROM channels ORDER BY id"))]
        for channel_id in ids:
            conn.execute(
                sa.text(
                    "INSERT INTO fields (channel_id, number, name, created_at)"
                    " VALUES (:c, 1, 'temperature', CURRENT_TIMESTAMP)"
                ),
                {"c": channel_id},
            )
            field_id = conn.execute(
                sa.text("SELECT id FROM fields WHERE channel_id = :c"), {"c": channel_id}
            ).scalar()
            conn.execute(
                sa.text("INSERT INTO entries (channel_id, ts, entry_id) VALUES (:c, 1, 1)"), {"c": channel_id}
            )
            conn.execute(
                sa.text("INSERT INTO readings (field_id, ts, value) VALUES (:f, 1, 21.5)"), {"f": field_id}
            )
            conn.execute(
                sa.text("INSERT INTO channel_meta (channel_id, tags) VALUES (:c, '[\"x\"]')"),
                {"c": channel_id},
            )
    counts = "SELECT (SELECT count(*) FROM fields), (SELECT count(*) FROM entries), (SELECT count(*) FROM readings), (SELECT count(*) FROM channel_meta)"  # noqa: E501
    upgrade()
    with db.engine.connect() as conn:
        assert tuple(conn.exec_driver_sql(counts).one()) == (2, 2, 2, 2)
    user = db.session.get(User, owner.id)
    manage.delete_channel(manage.find_channel(str(ids[1])))
    with db.engine.connect() as conn:  # the cascade still reaches fields, entries, readings and metadata
        assert tuple(conn.exec_driver_sql(counts).one()) == (1, 1, 1, 1)
    again = manage.create_channel(user, "three")
    assert again.id == ids[1] + 1


def test_upgrading_to_energy_marks_every_hour_so_integrals_are_built(fresh_app) -> None:  # type: ignore[no-untyped-def]
    """Migration 0014: slots made before it lack t0, area and rise; every hour is marked, so the
    first read rebuilds them instead of reading NULLs as zeros."""
    from fieldstation import energy

    upgrade(revision="0006_compact_rollup_slots")
    channel_id, minute = old_channel("house"), 60_000_000
    base = 1_780_000_000_000_000 // 86_400_000_000 * 86_400_000_000
    with db.engine.begin() as conn:
        field_id = conn.exec_driver_sql(f"SELECT id FROM fields WHERE channel_id = {channel_id}").scalar()
        for i in range(91):  # 1,000 W for 90 minutes, then 0, and the slots an old refresh made
            value = 1000.0 if i < 90 else 0.0
            row = {"f": field_id, "t": base + i * minute, "v": value}
            conn.execute(sa.text("INSERT INTO readings (field_id, ts, value) VALUES (:f, :t, :v)"), row)
            conn.execute(
                sa.text("INSERT INTO rollup_minute (field_id, ts, n, sum) VALUES (:f, :t, 1, :v)"), row
            )
    upgrade()
    day = 86_400_000_000
    assert [t.energy for t in energy.totals(field_id, base, base + day, day)] == [pytest.approx(1500.0)]
