"""Devices seen: who wrote to a channel and when, apart from the allow-list (issue 19).

The write path calls :func:`record` once per batch that names a device, inside
the batch's transaction, on the batch's own cursor: one upsert of the device's
row for the hour of arrival (``models.monitoring``). PostgreSQL's single-reading
statement takes the same upsert as one more CTE (:data:`PG_SINGLE_CTE`). Seeing
a device never restricts who may write: that is the allow-list's job.

A device is *silent* when it has not written for longer than its expected
interval: the one set for the device, else the channel's, else ten times its
median interval between writes over the last day it was active.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select

from fieldstation.errors import BadRequest
from fieldstation.extensions import db
from fieldstation.models import DeviceActivity, DeviceExpectation
from fieldstation.points import normalize_device
from fieldstation.timeunits import DAY, HOUR, SECOND, slot_start, slot_start_sql

#: Without an expected interval, a device is silent after this many of its median intervals.
MEDIAN_FACTOR = 10
#: Hour rows older than this are folded into the device's hour-0 row by :func:`compact`.
KEEP_HOURS_US = 2 * DAY
#: Largest expected interval that can be set (a year).
MAX_INTERVAL_S = 366 * DAY // SECOND

_UPSERT = (
    "INSERT INTO device_activity (channel_id, device, hour, writes, entries, first_us, last_us) "
    "VALUES (?, ?, ?, 1, ?, ?, ?) ON CONFLICT (channel_id, device, hour) DO UPDATE SET "
    "writes = device_activity.writes + 1, entries = device_activity.entries + excluded.entries, "
    "first_us = {least}(device_activity.first_us, excluded.first_us), "
    "last_us = {greatest}(device_activity.last_us, excluded.last_us)"
)
UPSERT = {
    "sqlite": _UPSERT.format(least="min", greatest="max"),
    "postgresql": _UPSERT.format(least="LEAST", greatest="GREATEST").replace("?", "%s"),
}

#: The upsert as a CTE of ``store``'s single-reading statement on PostgreSQL: ``r`` is the
#: channel row the statement updated (none when it wrote nothing), ``k`` the key, ``p`` the
#: request's device and time. The device is the key's bound one, else the request's.
#: Its hour binds the statement's ``%(hour)s`` and ``%(shift)s`` (``ingest.write_single`` gives them).
PG_SINGLE_CTE = f"""d AS (
  INSERT INTO device_activity (channel_id, device, hour, writes, entries, first_us, last_us)
  SELECT r.id, COALESCE(k.device_id, p.device), {slot_start_sql("p.now", "%(hour)s", "%(shift)s")},
    1, 1, p.now, p.now
  FROM r, k, p WHERE COALESCE(k.device_id, p.device) IS NOT NULL
  ON CONFLICT (channel_id, device, hour) DO UPDATE SET
    writes = device_activity.writes + 1, entries = device_activity.entries + 1,
    first_us = LEAST(device_activity.first_us, excluded.first_us),
    last_us = GREATEST(device_activity.last_us, excluded.last_us)
)"""  # noqa: S608 - constants only


def record(cur: Any, dialect: str, channel_id: int, device: str, entries: int, now: int) -> None:
    """Count a write of ``entries`` entries by ``device``, arrived at ``now`` µs, in the open transaction."""
    cur.execute(UPSERT[dialect], (channel_id, device, slot_start(now, HOUR), entries, now, now))


@dataclass(frozen=True, slots=True)
class DeviceSeen:
    """One device that wrote to a channel."""

    device: str
    first_seen_us: int
    last_seen_us: int
    writes: int
    entries: int
    #: Median seconds between its writes over the last day it was active (None: fewer than two).
    median_interval_s: float | None
    #: Seconds of quiet after which it counts as silent (None: nothing to go by).
    expected_interval_s: float | None
    #: Where ``expected_interval_s`` comes from: "device", "channel", "median" or None.
    expected_from: str | None
    silent: bool
    #: Seconds since it last wrote.
    quiet_s: float


def median_interval_s(rows: list[tuple[int, int, int, int]]) -> float | None:
    """Median seconds between writes from hour rows ``(hour, writes, first_us, last_us)``.

    Inside an hour the writes are taken as evenly spaced (the hour's mean interval,
    once per gap); between hours the gap from one's last write to the next one's
    first counts once. Exact for a device that writes at a steady pace.
    """
    weighted: list[tuple[float, int]] = []
    previous_last: int | None = None
    for _hour, writes, first_us, last_us in sorted(rows):
        if writes > 1:
            weighted.append(((last_us - first_us) / (writes - 1), writes - 1))
        if previous_last is not None:
            weighted.append((float(first_us - previous_last), 1))
        previous_last = last_us
    total = sum(count for _, count in weighted)
    if not total:
        return None
    # the median of the weighted multiset, without expanding it
    weighted.sort()
    middle = [(total - 1) // 2, total // 2]
    picked: list[float] = []
    seen = 0
    for value, count in weighted:
        while len(picked) < 2 and middle[len(picked)] < seen + count:
            picked.append(value)
        seen += count
    return statistics.fmean(picked) / 1e6


def seen(channel_id: int, now: int) -> list[DeviceSeen]:
    """The channel's devices seen, most recently seen first, with their silence at ``now`` (µs)."""
    table = DeviceActivity
    rows = db.session.execute(
        select(table.device, table.hour, table.writes, table.entries, table.first_us, table.last_us).where(
            table.channel_id == channel_id
        )
    ).all()
    expected_by = expected(channel_id)
    by_device: dict[str, list[Any]] = {}
    for row in rows:
        by_device.setdefault(row.device, []).append(row)
    found = []
    for device, hours in by_device.items():
        last = max(r.last_us for r in hours)
        recent = [(r.hour, r.writes, r.first_us, r.last_us) for r in hours if r.hour and r.hour > last - DAY]
        median = median_interval_s(recent)
        interval: float | None
        source: str | None
        if device in expected_by:
            interval, source = float(expected_by[device]), "device"
        elif "" in expected_by:
            interval, source = float(expected_by[""]), "channel"
        elif median is not None:
            interval, source = median * MEDIAN_FACTOR, "median"
        else:
            interval, source = None, None
        quiet = max(0.0, (now - last) / 1e6)
        found.append(
            DeviceSeen(
                device=device,
                first_seen_us=min(r.first_us for r in hours),
                last_seen_us=last,
                writes=sum(r.writes for r in hours),
                entries=sum(r.entries for r in hours),
                median_interval_s=median,
                expected_interval_s=interval,
                expected_from=source,
                silent=interval is not None and quiet > interval,
                quiet_s=quiet,
            )
        )
    found.sort(key=lambda d: (-d.last_seen_us, d.device))
    return found


def set_expected(channel_id: int, device: str | None, interval_s: int | None) -> None:
    """Set (or with ``None`` clear) the expected interval of a device, or with ``device`` None the channel's.

    :raise BadRequest: an interval below one second or over a year, or a bad device id.
    """
    key = "" if device is None else normalize_device(device)
    if interval_s is not None and not 1 <= interval_s <= MAX_INTERVAL_S:
        raise BadRequest(f"expected intervals are 1 to {MAX_INTERVAL_S} seconds", code="bad_interval")
    session = db.session
    session.execute(
        delete(DeviceExpectation).where(
            DeviceExpectation.channel_id == channel_id, DeviceExpectation.device == key
        )
    )
    if interval_s is not None:
        session.add(DeviceExpectation(channel_id=channel_id, device=key, interval_s=interval_s))
    session.commit()


def expected(channel_id: int) -> dict[str, int]:
    """The expected intervals set on a channel: device -> seconds ("" is the channel's default)."""
    rows = db.session.execute(
        select(DeviceExpectation.device, DeviceExpectation.interval_s).where(
            DeviceExpectation.channel_id == channel_id
        )
    )
    return {device: int(seconds) for device, seconds in rows}


def compact(now: int) -> int:
    """Fold hour rows older than two days into each device's hour-0 row; returns the rows folded.

    The totals (writes, entries, first and last seen) stay as they were. Run by the
    maintenance worker; safe to run twice at once (each fold is one transaction that
    deletes exactly the rows it added up).
    """
    cutoff = now - KEEP_HOURS_US
    session = db.session
    old = session.execute(
        select(
            DeviceActivity.channel_id,
            DeviceActivity.device,
            DeviceActivity.hour,
            DeviceActivity.writes,
            DeviceActivity.entries,
            DeviceActivity.first_us,
            DeviceActivity.last_us,
        )
        .where(DeviceActivity.hour > 0, DeviceActivity.hour < cutoff)
        .with_for_update(skip_locked=True)
    ).all()
    if not old:
        session.rollback()
        return 0
    totals: dict[tuple[int, str], list[int]] = {}
    for row in old:
        total = totals.setdefault((row.channel_id, row.device), [0, 0, row.first_us, row.last_us])
        total[0] += row.writes
        total[1] += row.entries
        total[2] = min(total[2], row.first_us)
        total[3] = max(total[3], row.last_us)
    dialect = session.get_bind().dialect.name
    cursor_sql = _FOLD[dialect]
    connection = session.connection()
    for (channel_id, device), (writes, entries, first, last) in totals.items():
        connection.exec_driver_sql(cursor_sql, (channel_id, device, writes, entries, first, last))
    for row in old:
        session.execute(
            delete(DeviceActivity).where(
                DeviceActivity.channel_id == row.channel_id,
                DeviceActivity.device == row.device,
                DeviceActivity.hour == row.hour,
            )
        )
    session.commit()
    return len(old)


_FOLD_SQL = (
    "INSERT INTO device_activity (channel_id, device, hour, writes, entries, first_us, last_us) "
    "VALUES (?, ?, 0, ?, ?, ?, ?) ON CONFLICT (channel_id, device, hour) DO UPDATE SET "
    "writes = device_activity.writes + excluded.writes, "
    "entries = device_activity.entries + excluded.entries, "
    "first_us = {least}(device_activity.first_us, excluded.first_us), "
    "last_us = {greatest}(device_activity.last_us, excluded.last_us)"
)
_FOLD = {
    "sqlite": _FOLD_SQL.format(least="min", greatest="max"),
    "postgresql": _FOLD_SQL.format(least="LEAST", greatest="GREATEST").replace("?", "%s"),
}
