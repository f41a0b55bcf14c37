"""Streaming CSV and NDJSON exports: keyset pages in, text chunks out, constant memory.

Each page is one bounded index range scan (``ts > last``); each chunk is one
page rendered by ``csv.writer`` (never by joining strings), so a ten-million
row export neither times out nor grows the process.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Sequence
from typing import Protocol

from fieldstation import query
from fieldstation.params import format_time, format_times
from fieldstation.points import guard_text, number_text


class NamedField(Protocol):
    """What an export needs of a field: an ORM ``Field`` or a ``query.FieldInfo``."""

    @property
    def id(self) -> int:
        """Database id."""

    @property
    def number(self) -> int:
        """Number within the channel."""

    @property
    def name(self) -> str:
        """Column header."""


def _number(value: float | str | None) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return guard_text(value)
    return number_text(value)


def field_csv(field: NamedField, start: int, end: int, page: int = 5000) -> Iterator[str]:
    """``time,value`` rows of one field, oldest first."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["time", field.name])
    after: int | None = None
    while True:
        got = query.series_rows(field.id, start, end, limit=page, after=after)
        rows, texts = got.pairs, got.texts
        times = format_times([ts for ts, _ in rows])
        writer.writerows(
            (time, _number(value) if value is not None else guard_text(texts.get(ts) or ""))
            for time, (ts, value) in zip(times, rows, strict=True)
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        if len(rows) < page:
            return
        after = rows[-1][0]


def field_ndjson(field: NamedField, start: int, end: int, page: int = 5000) -> Iterator[str]:
    """One JSON object per line: ``{"time": …, "value": …}``, oldest first."""
    after: int | None = None
    while True:
        rows = query.series(field.id, start, end, limit=page, after=after)
        times = format_times([p.ts for p in rows])
        yield "".join(
            json.dumps({"time": time, "value": p.value if p.value is not None else p.text}) + "\n"
            for time, p in zip(times, rows, strict=True)
        )
        if len(rows) < page:
            return
        after = rows[-1].ts


def channel_csv(channel_id: int, fields: Sequence[NamedField], start: int, end: int) -> Iterator[str]:
    """One row per entry: time, entry_id, every field (by name), status, latitude, longitude, elevation."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    numbers = [f.number for f in fields]
    writer.writerow(
        ["time", "entry_id", *(f.name for f in fields), "status", "latitude", "longitude", "elevation"]
    )
    for page in _entry_pages(channel_id, start, end):
        times = format_times([e.ts for e in page])
        writer.writerows(
            [
                time,
                e.entry_id,
                *(_number(e.values.get(n)) for n in numbers),
                guard_text(e.status or ""),
                _number(e.latitude),
                _number(e.longitude),
                _number(e.elevation),
            ]
            for time, e in zip(times, page, strict=True)
        )
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()


def channel_ndjson(channel_id: int, fields: Sequence[NamedField], start: int, end: int) -> Iterator[str]:
    """One JSON object per entry, values keyed ``field<N>`` as in ThingSpeak feeds."""
    for page in _entry_pages(channel_id, start, end):
        lines = []
        for e in page:
            row: dict[str, object] = {"time": format_time(e.ts), "entry_id": e.entry_id}
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
