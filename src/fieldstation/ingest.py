"""One reading from a device, stored with its key check: the write path's fast lanes.

Most device traffic is a single server-stamped entry (``/update``, the seed
URL, one ``/write`` line). :func:`write_entry` stores it with the same answers
as :func:`fieldstation.auth.authorize_write` followed by
:func:`fieldstation.store.write`, in fewer steps:

* SQLite: the key lookup and the write on one pooled connection, outside the
  session, the lookup before the writers' queue (:func:`_write_keyed`);
* PostgreSQL: the key lookup, the rules, the rate limit, the entry, its
  readings and their rollup marks in ONE statement, one round trip
  (:data:`_WRITE_ONE`), built from the rules' own SQL fragments.

Whatever the fused statement cannot decide (a refused key, the rate limit, an
unknown field, a taken microsecond) goes the ordinary way, which names the
reason.
"""

from __future__ import annotations

from fieldstation import auth, devices, metrics, store, writehooks
from fieldstation import db as database
from fieldstation.auth import WriteGrant
from fieldstation.db import Dialect
from fieldstation.errors import Unauthorized
from fieldstation.extensions import db
from fieldstation.points import Batch, Entry
from fieldstation.store import StoredEntry, WriteResult
from fieldstation.timeunits import FLOOR_SHIFT, HOUR, now_us, slot_start_sql


def write_entry(
    raw_key: str | None, device: str | None, entry: Entry, *, grant: WriteGrant | None = None
) -> tuple[WriteGrant, WriteResult]:
    """Authorise a write key and store one entry with it (see the module docstring for the lanes).

    A caller that already holds the key's ``grant`` (``/write`` checks it before
    its ``db``) saves the ordinary way its second lookup.

    :raise Unauthorized: no key, unknown, revoked or not a write key.
    :raise Forbidden: the device is not the key's device or not on the channel's allow-list.
    """
    if not raw_key:
        raise Unauthorized("a write API key is required")
    if entry.ts is None and not database.session_busy():
        dialect = database.dialect()
        if dialect.round_trips:
            outcome = write_single(auth.hash_key(raw_key), device, entry)
            if not isinstance(outcome, str):  # else a taken microsecond: nothing written
                row, result = outcome
                grant = auth.grant(row, device)
                if result is not None:
                    return grant, result
                return grant, store.write(Batch(grant.channel_id, [entry], device=grant.device))
        elif grant is None:
            return _write_keyed(auth.hash_key(raw_key), device, entry, dialect)
    grant = grant or auth.authorize_write(raw_key, device)
    return grant, store.write(Batch(grant.channel_id, [entry], device=grant.device))


def _write_keyed(
    key_hash: str, device: str | None, entry: Entry, dialect: Dialect
) -> tuple[WriteGrant, WriteResult]:
    """Look up a write key and store one server-stamped entry with it, on one pooled connection (SQLite).

    One checkout for both, no session, and the lookup before the writer's turn,
    so only the write waits for other writers. Layered through the session and
    the request's shared connection, the same work cost 12–25% more
    (docs/performance.md). A refused key raises before anything is written.
    """
    now = now_us()
    with database.own_connection() as connection:
        cursor = connection.cursor()
        granted = auth.grant(auth.lookup_write_key(cursor, dialect, key_hash, device), device)
        batch = Batch(granted.channel_id, [entry], device=granted.device)
        with database.writer_turn():
            try:
                result = store.write_rows(cursor, store.STATEMENTS[dialect.name], batch, now)
                with metrics.commit_timer():
                    connection.commit()
            except BaseException:
                if connection.is_valid:
                    connection.rollback()
                raise
        return granted, result


#: PostgreSQL: key lookup, write rule, channel reserve + rate limit, entry, readings and rollup
#: marks of one server-stamped entry in ONE statement. Run in autocommit, it is its own
#: transaction: all of it commits before the answer arrives, or none of it. Every
#: data-modifying part hangs off the channel UPDATE, which runs only for a key that passes
#: the write rule (:func:`fieldstation.auth.may_write_sql`; Python applies its twin to the
#: returned row to choose 401/403), only when every field number exists and the channel has no
#: calibration or computed field (``store.write`` applies those in Python); otherwise nothing
#: is written and the caller takes the ordinary path, which names the reason. The entry is
#: inserted at ``now`` without ON CONFLICT: a taken microsecond aborts the whole statement,
#: and the ordinary path then finds the next free one. ``readings`` has no foreign key on
#: PostgreSQL (models.readings); ``rollup_dirty`` has, and its check, at the end of the
#: statement, share-locks each field row (after the channel row, as the store's
#: ``reserve_fields`` does): a field deleted meanwhile aborts the statement the same way, and
#: one deleted later waits for it. ``{values}`` is one of the two constants below.
_WRITE_ONE_TEMPLATE = f"""
WITH p AS (SELECT CAST(%(device)s AS VARCHAR(64)) AS device, CAST(%(now)s AS BIGINT) AS now),
k AS ({auth.key_row_sql("p.device", "%(key_hash)s", "api_keys k, p")}),
v AS ({{values}}),
f AS (
  SELECT f.id, v.value, v.text
  FROM k JOIN fields f ON f.channel_id = k.channel_id JOIN v ON f.number = v.number
),
r AS (
  UPDATE channels c SET last_entry_id = c.last_entry_id + 1, last_write_us = p.now
  FROM k, p
  WHERE c.id = k.channel_id AND {auth.may_write_sql("k", "p.device")}
    AND {store.rate_limit_passes_sql("c", "p.now")}
    AND (SELECT count(*) FROM f) = %(count)s AND NOT c.derived
  RETURNING c.id, c.last_entry_id
),
e AS (
  INSERT INTO entries (channel_id, ts, entry_id, status, latitude, longitude, elevation)
  SELECT r.id, p.now, r.last_entry_id, %(status)s, %(latitude)s, %(longitude)s, %(elevation)s FROM r, p
  RETURNING entry_id, ts
),
w AS (
  INSERT INTO readings (field_id, ts, value, text) SELECT f.id, e.ts, f.value, f.text FROM f, e
  ON CONFLICT (field_id, ts) DO UPDATE SET value = excluded.value, text = excluded.text
),
m AS ({store.mark_dirty_sql(f"SELECT f.id, {slot_start_sql('e.ts', '%(hour)s', '%(shift)s')}, 1 FROM f, e")}),
{devices.PG_SINGLE_CTE}
SELECT k.id, k.kind, k.channel_id, k.device_id, k.restricted, k.allowed, (SELECT entry_id FROM e) FROM k
"""  # noqa: S608
#: The statement for one value (the usual device) binds scalars, for any other count arrays:
#: psycopg adapts the three arrays in about 20 µs, scalars in a third of that.
_WRITE_ONE = {
    True: _WRITE_ONE_TEMPLATE.replace(
        "{values}",
        "SELECT CAST(%(number)s AS INTEGER) AS number, CAST(%(value)s AS DOUBLE PRECISION) AS value, "
        "CAST(%(text)s AS VARCHAR(255)) AS text",
    ),
    False: _WRITE_ONE_TEMPLATE.replace(
        "{values}",
        "SELECT * FROM unnest(CAST(%(numbers)s AS INTEGER[]), CAST(%(values)s AS DOUBLE PRECISION[]), "
        "CAST(%(texts)s AS VARCHAR(255)[])) AS v (number, value, text)",
    ),
}

#: :func:`write_single` could not decide; take the ordinary path (key lookup, then the store).
RETRY_ORDINARY = "retry"


def write_single(
    key_hash: str, device: str | None, entry: Entry, *, now: int | None = None
) -> tuple[auth.KeyRow | None, WriteResult | None] | str:
    """Look up a write key and store one server-stamped entry with it, in one statement (PostgreSQL).

    Returns the key row (as :func:`fieldstation.auth.lookup_write_key` does) and
    what was stored, or ``None`` for the latter when nothing was: the key fails
    the rule, the channel refuses the write (rate limit, unknown field) or the
    row cannot say. The caller applies the rule to the row and, for a good key,
    takes the ordinary path, which raises the exact error. :data:`RETRY_ORDINARY`
    when the statement failed on a taken microsecond: nothing was written.
    """
    if entry.ts is not None:
        raise ValueError("write_single stores server-stamped entries only")
    now = now_us() if now is None else now
    values = entry.values
    params: dict[str, object] = {
        "device": device,
        "now": now,
        "key_hash": key_hash,
        "count": len(values),
        "status": entry.status,
        "latitude": entry.latitude,
        "longitude": entry.longitude,
        "elevation": entry.elevation,
        "hour": HOUR,
        "shift": FLOOR_SHIFT,
    }
    one = len(values) == 1
    if one:
        [(params["number"], value)] = values.items()
        params["value"], params["text"] = (None, value) if isinstance(value, str) else (value, None)
    else:
        params["numbers"] = list(values)
        params["values"] = [None if isinstance(v, str) else v for v in values.values()]
        params["texts"] = [v if isinstance(v, str) else None for v in values.values()]
    integrity_error = db.engine.dialect.loaded_dbapi.IntegrityError
    with database.autocommit_connection() as (connection, _dialect):
        cursor = connection.cursor()
        try:
            cursor.execute(_WRITE_ONE[one], params)
            row = cursor.fetchone()
        except integrity_error:
            return RETRY_ORDINARY  # autocommit: the failed statement left nothing behind
        finally:
            if connection.is_valid:
                cursor.close()
    if row is None:
        return None, None
    key_id, kind, channel_id, bound, restricted, allowed, entry_id = row
    key = auth.key_row((key_id, kind, channel_id, bound, restricted, allowed))
    if entry_id is None:
        return key, None
    writehooks.written_single(len(values))  # the device seen: devices.PG_SINGLE_CTE, above
    return key, WriteResult([StoredEntry(int(entry_id), now, True)], len(values))
