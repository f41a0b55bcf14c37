"""The only writer of readings: one batch, one transaction.

Order of statements matters. The first statement is an UPDATE of the channel
row: it takes the channel's row lock on PostgreSQL and SQLite's write lock (so
a second writer waits in busy_timeout instead of failing on a read-to-write
upgrade), bumps the entry counter and enforces the rate limit atomically.
Everything after it sees a stable channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Table, and_, bindparam, cast, literal, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, scoped_session

from fieldstation import rollups
from fieldstation.errors import BadRequest, Conflict, NotFound, RateLimited
from fieldstation.extensions import db
from fieldstation.models import Channel, Entry, Field, Reading
from fieldstation.models.base import utcnow
from fieldstation.points import US, Batch, now_us

#: Bound on how many server-stamped timestamps are probed for a free microsecond.
_STAMP_WINDOW_US = 10_000
#: Parameters per IN (...) list, well below SQLite's and PostgreSQL's limits.
_CHUNK = 500


AnySession = Session | scoped_session[Any]
ENTRIES: Table = Entry.__table__  # type: ignore[assignment]
READINGS: Table = Reading.__table__  # type: ignore[assignment]


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """Where one batch entry landed."""

    entry_id: int
    ts: int
    created: bool


@dataclass(frozen=True, slots=True)
class WriteResult:
    """What a write stored, in batch order."""

    entries: list[StoredEntry]
    points: int

    @property
    def created(self) -> int:
        """How many entries were new (the rest updated existing timestamps)."""
        return sum(1 for e in self.entries if e.created)


def write(batch: Batch, *, now: int | None = None) -> WriteResult:
    """Store ``batch`` all-or-nothing and commit; nothing is acknowledged before the commit.

    Writing a (field, timestamp) that exists replaces its value: devices retry
    and backfill without creating duplicates.

    :raise BadRequest: empty batch or a field number the channel lacks.
    :raise NotFound: the channel does not exist.
    :raise RateLimited: the channel's minimum interval has not passed.
    """
    session = db.session
    try:
        result = _write(session, batch, now_us() if now is None else now)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return result


def write_many(batches: Sequence[Batch], *, now: int | None = None) -> list[WriteResult]:
    """Store several batches (one channel each) in ONE transaction, all-or-nothing.

    For workers that group many small messages (MQTT) into one commit; each batch is
    written exactly as :func:`write` would write it.
    """
    session = db.session
    stamp = now_us() if now is None else now
    try:
        results = [_write(session, batch, stamp) for batch in batches]
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return results


def _write(session: AnySession, batch: Batch, now: int) -> WriteResult:
    if not batch.entries:
        raise BadRequest("nothing to write", code="empty")
    last_entry_id = _lock_channel(session, batch.channel_id, len(batch.entries), now)
    field_ids = dict(
        session.execute(select(Field.number, Field.id).where(Field.channel_id == batch.channel_id))
        .tuples()
        .all()
    )
    for entry in batch.entries:
        for number in entry.values:
            if number not in field_ids:
                raise BadRequest(f"channel has no field {number}", code="unknown_field")

    timestamps = _assign_timestamps(session, batch, now)
    existing = _existing_entries(session, batch.channel_id, set(timestamps))
    next_id = last_entry_id - len(batch.entries) + 1
    stored: list[StoredEntry] = []
    assigned: dict[int, int] = dict(existing)
    new_rows: list[dict[str, object]] = []
    meta_updates: list[dict[str, object]] = []
    for entry, ts in zip(batch.entries, timestamps, strict=True):
        meta = {
            "status": entry.status,
            "latitude": entry.latitude,
            "longitude": entry.longitude,
            "elevation": entry.elevation,
        }
        if ts in assigned:
            if any(v is not None for v in meta.values()):
                meta_updates.append({"b_ts": ts, **meta})
            stored.append(StoredEntry(assigned[ts], ts, ts not in existing))
            continue
        assigned[ts] = next_id
        new_rows.append({"channel_id": batch.channel_id, "ts": ts, "entry_id": next_id, **meta})
        stored.append(StoredEntry(next_id, ts, True))
        next_id += 1
    if next_id - 1 != last_entry_id:
        # Some entries existed already: give back the ids reserved for them.
        session.execute(
            update(Channel).where(Channel.id == batch.channel_id).values(last_entry_id=next_id - 1)
        )
    if new_rows:
        session.execute(ENTRIES.insert(), new_rows)
    if meta_updates:
        _update_metadata(session, batch.channel_id, meta_updates)

    readings = [
        _reading(field_ids[number], ts, value)
        for entry, ts in zip(batch.entries, timestamps, strict=True)
        for number, value in entry.values.items()
    ]
    if readings:
        session.execute(_upsert_readings(session), readings)
        rollups.mark_dirty(session, readings)
    return WriteResult(stored, len(readings))


def _lock_channel(session: AnySession, channel_id: int, count: int, now: int) -> int:
    """Reserve ``count`` entry ids and enforce the rate limit; returns the new counter."""
    interval_ok = or_(
        Channel.min_interval_s == 0,
        Channel.last_write_us.is_(None),
        Channel.last_write_us + cast(Channel.min_interval_s, BigInteger) * US <= literal(now, BigInteger),
    )
    reserved = session.execute(
        update(Channel)
        .where(Channel.id == channel_id, interval_ok)
        .values(last_entry_id=Channel.last_entry_id + count, last_write_us=now)
        .returning(Channel.last_entry_id)
    ).scalar()
    if reserved is not None:
        return int(reserved)
    interval = session.scalar(select(Channel.min_interval_s).where(Channel.id == channel_id))
    if interval is None:
        raise NotFound("channel not found")
    raise RateLimited(f"this channel accepts one update every {interval} s")


def _assign_timestamps(session: AnySession, batch: Batch, now: int) -> list[int]:
    """Explicit timestamps as given; server-stamped entries get ``now`` or the next free µs.

    A server-stamped entry must never overwrite another entry, so stamps skip
    microseconds already taken in the channel or in this batch.
    """
    explicit = {e.ts for e in batch.entries if e.ts is not None}
    stamped = sum(1 for e in batch.entries if e.ts is None)
    if not stamped:
        return [e.ts for e in batch.entries if e.ts is not None]
    taken = explicit | set(
        session.scalars(
            select(Entry.ts).where(
                Entry.channel_id == batch.channel_id,
                Entry.ts >= now,
                Entry.ts < now + _STAMP_WINDOW_US,
            )
        )
    )
    free = (ts for ts in range(now, now + _STAMP_WINDOW_US) if ts not in taken)
    result = []
    for entry in batch.entries:
        if entry.ts is not None:
            result.append(entry.ts)
            continue
        stamp = next(free, None)
        if stamp is None:
            raise Conflict("too many entries stamped in the same instant", code="busy")
        result.append(stamp)
    return result


def _existing_entries(session: AnySession, channel_id: int, timestamps: Iterable[int]) -> dict[int, int]:
    """Map of timestamp -> entry id for the given timestamps that already exist."""
    found: dict[int, int] = {}
    ordered = sorted(timestamps)
    for start in range(0, len(ordered), _CHUNK):
        chunk = ordered[start : start + _CHUNK]
        rows = (
            session.execute(
                select(Entry.ts, Entry.entry_id).where(Entry.channel_id == channel_id, Entry.ts.in_(chunk))
            )
            .tuples()
            .all()
        )
        found.update(rows)
    return found


def _update_metadata(session: AnySession, channel_id: int, rows: Sequence[Mapping[str, object]]) -> None:
    """Overwrite status/location of re-written entries where the new write carries them."""
    table = ENTRIES
    stmt = (
        table.update()
        .where(and_(table.c.channel_id == channel_id, table.c.ts == bindparam("b_ts")))
        .values(
            status=bindparam("status"),
            latitude=bindparam("latitude"),
            longitude=bindparam("longitude"),
            elevation=bindparam("elevation"),
        )
    )
    session.execute(stmt, list(rows))


def _reading(field_id: int, ts: int, value: float | str) -> dict[str, object]:
    if isinstance(value, str):
        return {"field_id": field_id, "ts": ts, "value": None, "text": value}
    return {"field_id": field_id, "ts": ts, "value": value, "text": None}


def _upsert_readings(session: AnySession) -> Any:
    """INSERT … ON CONFLICT (field_id, ts) DO UPDATE, in the session's dialect."""
    table = READINGS
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(table)
    return stmt.on_conflict_do_update(
        index_elements=[table.c.field_id, table.c.ts],
        set_={"value": stmt.excluded.value, "text": stmt.excluded.text},
    )


# -- field lookup and creation for adapters that name fields ---------------------------------


def field_numbers(channel_id: int) -> dict[str, int]:
    """A channel's field names -> numbers (the JSON API takes values by name)."""
    rows = db.session.execute(select(Field.name, Field.number).where(Field.channel_id == channel_id))
    return dict(rows.tuples().all())


def channel_matches(channel_id: int, ref: str) -> bool:
    """True when ``ref`` names this channel, by id or by name (InfluxDB's ``db`` parameter)."""
    name = db.session.scalar(select(Channel.name).where(Channel.id == channel_id))
    return name is not None and (ref == name or (ref.isascii() and ref.isdigit() and int(ref) == channel_id))


def ensure_fields(channel_id: int, names: Iterable[str], *, limit: int) -> dict[str, int]:
    """Numbers of the named fields, creating the missing ones with the next free numbers.

    New fields are flushed, not committed: the :func:`write` that follows in
    the same request commits them with the data, or rolls both back. The
    channel row is locked before fields are added, so two writers creating
    the same field serialise instead of colliding on the unique name.

    :raise BadRequest: a name over 255 characters, or more than ``limit`` fields.
    """
    wanted = set(names)
    known = field_numbers(channel_id)
    missing = sorted(wanted - known.keys())
    if not missing:
        return {name: known[name] for name in wanted}
    session = db.session
    try:
        for name in missing:
            if not name.strip() or len(name) > 255:
                raise BadRequest(f"field names are 1-255 characters: {name[:60]!r}…", code="bad_field_name")
        locked = session.execute(
            update(Channel)
            .where(Channel.id == channel_id)
            .values(last_entry_id=Channel.last_entry_id)
            .returning(Channel.id)
        ).scalar()
        if locked is None:
            raise NotFound("channel not found")
        known = field_numbers(channel_id)  # another writer may have added some meanwhile
        missing = sorted(wanted - known.keys())
        if len(known) + len(missing) > limit:
            raise BadRequest(
                f"this write would give the channel {len(known) + len(missing)} fields; "
                f"the limit is {limit} (MAX_FIELDS_PER_CHANNEL)",
                code="too_many_fields",
            )
        number = max(known.values(), default=0)
        rows = []
        for name in missing:
            number += 1
            rows.append({"channel_id": channel_id, "number": number, "name": name, "created_at": utcnow()})
            known[name] = number
        session.execute(Field.__table__.insert(), rows)  # type: ignore[attr-defined]
    except BaseException:
        session.rollback()
        raise
    return {name: known[name] for name in wanted}
