"""Streaming CSV and NDJSON exports: keyset pages in, text chunks out, constant memory.

Each page is one bounded index range scan (``ts > last``); each chunk is one
page rendered by ``csv.writer`` (never by joining strings), so a ten-million
row export neither times out nor grows the process.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Sequence

from fieldstation import query
from fieldstation.models import Field
from fieldstation.params import format_time


def _UtcClock() -> Callable[[int], str]:  # noqa: N802 - reads like the formatter it returns
    """The UTC formatter exports use (params.format_time's fast path)."""
    return format_time


def _number(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return repr(value) if value != int(value) or abs(value) >= 1e16 else str(int(value))


def field_csv(field: Field, start: int, end: int, page: int = 5000) -> Iterator[str]:
    """``time,value`` rows of one field, oldest first."""
    clock, buffer = _UtcClock(), io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["time", field.name])
    after: int | None = None
    while True:
        rows = query.series(field.id, start, end, limit=page, after=after)
        writer.writerows(
            (clock(p.ts), _number(p.value) if p.value is not None else p.text or "") for p in rows
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < page:
            return
        after = rows[-1].ts


def field_ndjson(field: Field, start: int, end: int, page: int = 5000) -> Iterator[str]:
    """One JSON object per line: ``{"time": …, "value": …}``, oldest first."""
    clock = _UtcClock()
    after: int | None = None
    while True:
        rows = query.series(field.id, start, end, limit=page, after=after)
        yield "".join(
            json.dumps({"time": clock(p.ts), "value": p.value if p.value is not None else p.text}) + "\n"
            for p in rows
        )
        if len(rows) < page:
            return
        after = rows[-1].ts


def channel_csv(channel_id: int, fields: Sequence[Field], start: int, end: int) -> Iterator[str]:
    """One row per entry: time, entry_id, every field (by name), status, latitude, longitude, elevation."""
    clock, buffer = _UtcClock(), io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    numbers = [f.number for f in fields]
    writer.writerow(
        ["time", "entry_id", *(f.name for f in fields), "status", "latitude", "longitude", "elevation"]
    )
    for page in _entry_pages(channel_id, start, end):
        writer.writerows(
            [
                clock(e.ts),
                e.entry_id,
                *(_number(e.values.get(n)) for n in numbers),
                e.status or "",
                _number(e.latitude),
                _number(e.longitude),
                _number(e.elevation),
            ]
            for e in page
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def channel_ndjson(channel_id: int, fields: Sequence[Field], start: int, end: int) -> Iterator[str]:
    """One JSON object per entry, values keyed ``field<N>`` as in ThingSpeak feeds."""
    clock = _UtcClock()
    for page in _entry_pages(channel_id, start, end):
        lines = []
        for e in page:
            row: dict[str, object] = {"time": clock(e.ts), "entry_id": e.entry_id}
            row.update({f"field{n}": v for n, v in sorted(e.values.items())})
            for name in ("status", "latitude", "longitude", "elevation"):
                if getattr(e, name) is not None:
                    row[name] = getattr(e, name)
            lines.append(json.dumps(row) + "\n")
        yield "".join(lines)


def _entry_pages(channel_id: int, start: int, end: int, page: int = 2000) -> Iterator[list[query.EntryRow]]:
    after: int | None = None
    while True:
        rows = query.entries_after(channel_id, start, end, after=after, limit=page)
        yield rows
        if len(rows) < page:
            return
        after = rows[-1].ts
