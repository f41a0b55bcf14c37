"""ingest.write_entry: key check and single-reading write, in one statement on PostgreSQL (#3)
and on one connection checkout, outside the session, on SQLite.

Every answer must be the one ``authorize_write`` followed by ``store.write`` gives, on
both engines: what is stored, the refusals (401, 403, rate limit, unknown field) and
that a refusal stores nothing.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from fieldstation import ingest, manage, store
from fieldstation.errors import BadRequest, Forbidden, RateLimited, Unauthorized
from fieldstation.extensions import db
from fieldstation.models import ApiKey, KeyKind
from fieldstation.points import Batch, Entry
from fieldstation.timeunits import HOUR, now_us, slot_start
from tests.factories import ChannelKeys, make_channel, make_user
from tests.test_store import entries, readings


@pytest.fixture
def fused(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Outcomes of ``ingest.write_single`` calls (PostgreSQL takes it, SQLite never)."""
    calls: list[object] = []
    original = ingest.write_single

    def spy(*args: Any, **kwargs: Any) -> Any:
        outcome = original(*args, **kwargs)
        calls.append(outcome)
        return outcome

    monkeypatch.setattr(ingest, "write_single", spy)
    return calls


@pytest.fixture
def keyed(app: Flask, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Grants returned by ``ingest._write_keyed`` (SQLite takes it, PostgreSQL never)."""
    calls: list[object] = []
    original = ingest._write_keyed

    def spy(*args: Any, **kwargs: Any) -> Any:
        grant, result = original(*args, **kwargs)
        calls.append(grant)
        return grant, result

    monkeypatch.setattr(ingest, "_write_keyed", spy)
    return calls


def fused_expected() -> bool:
    return db.engine.dialect.name == "postgresql"


def counter(channel_id: int) -> int:
    query = sa.text("SELECT last_entry_id FROM channels WHERE id = :c")
    return int(db.session.scalar(query, {"c": channel_id}))


def test_stores_the_entry_its_values_and_rollup_mark(
    channel: ChannelKeys, fused: list[object], keyed: list[object]
) -> None:
    before = now_us()
    grant, result = ingest.write_entry(
        channel.write_key, None, Entry({1: 21.5, 2: "warm"}, status="ok", latitude=1.5, longitude=2.5)
    )
    assert grant.channel_id == channel.id
    assert (len(fused), len(keyed)) == ((1, 0) if fused_expected() else (0, 1))
    [stored] = result.entries
    assert stored.entry_id == 1 and stored.created and before <= stored.ts <= now_us()
    assert result.points == 2
    assert readings(channel.id) == [(1, stored.ts, 21.5, None), (2, stored.ts, None, "warm")]
    assert entries(channel.id) == [(1, stored.ts, "ok")]
    location = db.session.execute(sa.text("SELECT latitude, longitude, elevation FROM entries")).one()
    assert tuple(location) == (1.5, 2.5, None)
    hour = slot_start(stored.ts, HOUR)
    marks = db.session.execute(sa.text("SELECT ts, gen FROM rollup_dirty ORDER BY field_id")).all()
    assert [tuple(m) for m in marks] == [(hour, 1), (hour, 1)]
    db.session.commit()  # a session with a transaction going takes the ordinary path, joining it
    _, second = ingest.write_entry(channel.write_key, None, Entry({1: 22.0}))
    _, text = ingest.write_entry(channel.write_key, None, Entry({2: "open"}))
    _, status = ingest.write_entry(channel.write_key, None, Entry({}, status="only a status"))
    assert [r.entries[0].entry_id for r in (second, text, status)] == [2, 3, 4] and counter(channel.id) == 4
    assert readings(channel.id)[2:] == [
        (1, second.entries[0].ts, 22.0, None),
        (2, text.entries[0].ts, None, "open"),
    ]
    assert entries(channel.id)[3] == (4, status.entries[0].ts, "only a status") and status.points == 0
    assert (len(fused), len(keyed)) == ((4, 0) if fused_expected() else (0, 4))


@pytest.mark.parametrize("which", ["wrong", "read", "revoked", "user", "missing"])
def test_keys_that_cannot_write_are_401_and_store_nothing(channel: ChannelKeys, which: str) -> None:
    account = make_user("bob")
    key = {
        "wrong": "NOTAKEY000000000",
        "read": channel.read_key,
        "revoked": channel.write_key,
        "user": account.key,
        "missing": "",
    }[which]
    if which == "revoked":
        manage.revoke_key(db.session.scalars(sa.select(ApiKey).where(ApiKey.kind == KeyKind.WRITE)).one())
    with pytest.raises(Unauthorized):
        ingest.write_entry(key, None, Entry({1: 1.0}))
    assert readings(channel.id) == [] and counter(channel.id) == 0


def test_devices_are_checked_before_anything_is_stored(app: Flask, fused: list[object]) -> None:
    owner = make_user().user
    bound = make_channel(owner, "bound", device="esp-1")
    with pytest.raises(Forbidden):
        ingest.write_entry(bound.write_key, "esp-2", Entry({1: 1.0}))
    grant, _ = ingest.write_entry(bound.write_key, None, Entry({1: 2.0}))
    assert grant.device == "esp-1"
    listed = make_channel(owner, "listed")
    manage.add_device(listed.channel, "esp-9")
    with pytest.raises(Forbidden):
        ingest.write_entry(listed.write_key, "esp-3", Entry({1: 3.0}))
    with pytest.raises(Forbidden):
        ingest.write_entry(listed.write_key, None, Entry({1: 4.0}))
    ingest.write_entry(listed.write_key, "esp-9", Entry({1: 5.0}))
    assert [r[2] for r in readings(bound.id)] == [2.0]
    assert [r[2] for r in readings(listed.id)] == [5.0]
    assert counter(bound.id) == 1 and counter(listed.id) == 1


def test_refusals_of_the_channel_are_the_ordinary_ones(channel: ChannelKeys, fused: list[object]) -> None:
    with pytest.raises(BadRequest, match="channel has no field 7"):
        ingest.write_entry(channel.write_key, None, Entry({1: 1.0, 7: 2.0}))
    assert readings(channel.id) == [] and counter(channel.id) == 0
    manage.update_channel(channel.channel, min_interval_s=60)
    db.session.commit()
    ingest.write_entry(channel.write_key, None, Entry({1: 1.0}))
    with pytest.raises(RateLimited):
        ingest.write_entry(channel.write_key, None, Entry({1: 2.0}))
    assert [r[2] for r in readings(channel.id)] == [1.0] and counter(channel.id) == 1
    if fused_expected():  # each refusal was the fused statement's, then the ordinary path's
        assert [outcome[1] is None for outcome in fused] == [True, False, True]  # type: ignore[index]


def test_a_taken_microsecond_moves_the_stamp_and_overwrites_nothing(
    channel: ChannelKeys, fused: list[object], monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = now_us() - 1_000_000
    store.write(Batch(channel.id, [Entry({1: 1.0}, ts=taken)]))
    monkeypatch.setattr(store, "now_us", lambda: taken)
    monkeypatch.setattr(ingest, "now_us", lambda: taken)
    _, result = ingest.write_entry(channel.write_key, None, Entry({1: 2.0}))
    if fused_expected():
        assert fused == [ingest.RETRY_ORDINARY]
    assert result.entries[0].ts == taken + 1 and result.entries[0].entry_id == 2
    assert readings(channel.id) == [(1, taken, 1.0, None), (1, taken + 1, 2.0, None)]
    assert counter(channel.id) == 2


@pytest.mark.parametrize("engine_name", ["postgres"])  # the server ends pooled connections
def test_a_connection_the_server_dropped_is_replaced(channel: ChannelKeys) -> None:
    channel_id = channel.id
    ingest.write_entry(channel.write_key, None, Entry({1: 1.0}))  # leaves a pooled connection behind
    db.session.commit()
    with db.engine.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND backend_type = 'client backend'"
            )
        )
    time.sleep(0.2)  # the FATAL message reaches the pooled sockets
    db.session.remove()
    ingest.write_entry(channel.write_key, None, Entry({1: 2.0}))
    assert [r[2] for r in readings(channel_id)] == [1.0, 2.0]
