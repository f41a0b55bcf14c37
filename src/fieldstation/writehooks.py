"""What every stored write also does (issue 19): count its device seen and its metrics.

``store`` calls :func:`written` once per batch, at the end of its statements,
inside the batch's transaction and on its cursor; PostgreSQL's single-reading
statement counts the device in SQL (``devices.PG_SINGLE_CTE``) and calls
:func:`written_single`. Threshold alerts need no hook: the maintenance worker
watches ``channels.last_write_us``, which every write sets already.

Metrics are counted when the statements succeeded, just before the commit; a
commit that fails after them (the database going away at that instant) is
counted though nothing was stored. Each commit of a write is timed where it
happens (``metrics.commit_timer``); PostgreSQL's single-reading statement runs
in autocommit, its commit inside the statement, and is not timed apart.
"""

from __future__ import annotations

from typing import Any, TypeVar

from fieldstation import devices, metrics
from fieldstation.points import Batch

R = TypeVar("R")


def written(cur: Any, dialect: str, batch: Batch, now: int, points: int, result: R) -> R:
    """Record the batch's device (one upsert) and count it; returns ``result`` for the caller's return."""
    if batch.device is not None:
        devices.record(cur, dialect, batch.channel_id, batch.device, len(batch.entries), now)
    metrics.stored(points)
    return result


def written_single(points: int) -> None:
    """Count a write stored by PostgreSQL's single-reading statement."""
    metrics.stored(points)
