"""Each access rule's SQL and Python forms agree, on every combination of keys, channels and devices.

``fieldstation.auth`` states who may write and who may read twice: as a SQL
fragment for the statements that fuse the check into their work, and as Python
for the answers that must say why. The time-slot rule of ``fieldstation.timeunits``
is stated the same way. Each pair is compared here on both engines.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fieldstation import auth, manage, query
from fieldstation.errors import FieldstationError
from fieldstation.extensions import db
from fieldstation.models import Channel, KeyKind
from fieldstation.timeunits import (
    DAY,
    FLOOR_SHIFT,
    HOUR,
    MAX_TS_US,
    MIN_TS_US,
    MINUTE,
    slot_start,
    slot_start_sql,
)
from tests.factories import make_user

#: Devices a request may name: none, one on an allow-list, one a key is bound to, a stranger.
DEVICES = [None, "listed", "bound", "stranger"]


@dataclass
class Universe:
    channels: list[Channel]
    #: Every raw key with a name saying what it is; None stands for "no key".
    keys: dict[str, str | None]


@pytest.fixture
def universe(app: Flask) -> Universe:
    """Two owners; public and private channels, with and without an allow-list; keys of every kind."""
    alice, bob = make_user("alice"), make_user("bob")
    keys: dict[str, str | None] = {"none": None, "unknown": "NOSUCHKEY0000000", "alice-user": alice.key}
    keys["bob-user"] = bob.key
    channels = []
    for owner, public, listed in itertools.product((alice, bob), (False, True), (False, True)):
        name = f"{owner.user.username}-{'pub' if public else 'priv'}-{'listed' if listed else 'open'}"
        channel = manage.create_channel(owner.user, name, fields=["t"], public=public)
        if listed:
            manage.add_device(channel, "listed")
            manage.add_device(channel, "bound")
        for kind in (KeyKind.WRITE, KeyKind.READ):
            _, keys[f"{name}-{kind.value}"] = manage.create_key(owner.user, kind, channel=channel)
        _, keys[f"{name}-bound"] = manage.create_key(
            owner.user, KeyKind.WRITE, channel=channel, device="bound"
        )
        revoked, keys[f"{name}-revoked"] = manage.create_key(owner.user, KeyKind.WRITE, channel=channel)
        manage.revoke_key(revoked)
        channels.append(channel)
    db.session.commit()
    return Universe(channels, keys)


def _may_write_in_sql(raw_key: str | None, device: str | None) -> bool:
    device_sql = "CAST(:device AS VARCHAR(64))"
    row = db.session.execute(
        sa.text(
            f"SELECT {auth.may_write_sql('k', device_sql)} "  # noqa: S608 - fragments of constants
            f"FROM ({auth.key_row_sql(device_sql, ':key_hash')}) k"
        ),
        {"device": device, "key_hash": auth.hash_key(raw_key or "")},
    ).first()
    return bool(row and row[0])


def _may_write_in_python(raw_key: str | None, device: str | None) -> bool:
    try:
        auth.authorize_write(raw_key, device)
    except FieldstationError:
        return False
    return True


def test_the_write_rule_is_the_same_in_sql_and_python(universe: Universe) -> None:
    verdicts = {}
    for (name, raw_key), device in itertools.product(universe.keys.items(), DEVICES):
        in_sql, in_python = _may_write_in_sql(raw_key, device), _may_write_in_python(raw_key, device)
        assert in_sql == in_python, (name, device)
        verdicts[name, device] = in_python
    # Not vacuous: the rule both grants and refuses, and the allow-list and the binding matter.
    assert verdicts["alice-priv-open-write", None] and not verdicts["alice-priv-open-read", None]
    assert (
        verdicts["alice-priv-listed-write", "listed"] and not verdicts["alice-priv-listed-write", "stranger"]
    )
    assert verdicts["alice-priv-open-bound", "bound"] and not verdicts["alice-priv-open-bound", "stranger"]
    assert not verdicts["alice-priv-open-revoked", None] and not verdicts["alice-user", None]


def _readable_in_sql(raw_key: str | None) -> set[int]:
    rows = db.session.execute(
        sa.text(
            f"SELECT c.id FROM channels c LEFT JOIN ({auth.KEY_SCOPE_SQL.replace('?', ':key_hash')}) s "  # noqa: S608
            f"ON true WHERE {auth.readable_sql('c', 's.owner_id', 's.channel_id')}"
        ),
        {"key_hash": auth.hash_key(raw_key) if raw_key else None},
    )
    return {channel_id for (channel_id,) in rows}


def test_the_read_rule_is_the_same_everywhere(universe: Universe) -> None:
    """The rule's SQL, its Python twin, and every read that applies it: channel reads and InfluxQL's."""
    for name, raw_key in universe.keys.items():
        scope = auth.key_scope(raw_key) or auth.NO_SCOPE
        in_python = {c.id for c in universe.channels if scope.may_read(c.public, c.owner_id, c.id)}
        assert _readable_in_sql(raw_key) == in_python, name
        assert {c.id for c in universe.channels if auth.can_read(c, raw_key)} == in_python, name
        assert {c.id for c in universe.channels if query.read_access(c.id, raw_key)} == in_python, name
        assert {c.id for c in universe.channels if query.find_database(c.name, scope)} == in_python, name
        assert set(query.readable_names(scope)) == {c.name for c in universe.channels if c.id in in_python}
    everything = {c.id for c in universe.channels}
    public = {c.id for c in universe.channels if c.public}
    assert _readable_in_sql(None) == public != everything
    assert _readable_in_sql(universe.keys["alice-user"]) == public | {
        c.id for c in universe.channels if c.owner_id == universe.channels[0].owner_id
    }


_TIMES = st.one_of(
    st.integers(MIN_TS_US, MAX_TS_US),
    st.integers(-3 * DAY, 3 * DAY),
    st.sampled_from([MIN_TS_US, MAX_TS_US, -1, 0, 1, -HOUR, HOUR - 1]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ts=_TIMES, width=st.sampled_from([MINUTE, HOUR, DAY]))
def test_the_slot_rule_is_the_same_in_sql_and_python(app: Flask, ts: int, width: int) -> None:
    # Reads only: the database needs no reset between examples.
    in_sql = db.session.execute(
        sa.text(f"SELECT {slot_start_sql('CAST(:ts AS BIGINT)', ':w', ':s')}"),  # noqa: S608
        {"ts": ts, "w": width, "s": FLOOR_SHIFT},
    ).scalar_one()
    assert in_sql == slot_start(ts, width)
