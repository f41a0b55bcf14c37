"""CSV upload into a channel, through the store, with a report of each bad row.

Reads what the download (``fieldstation.export.channel_csv``) writes — ``time,
entry_id,<field names>,status,latitude,longitude,elevation`` — so a downloaded
file uploads again unchanged, and ThingSpeak's columns (``created_at``,
``field1``…) as well.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO

from fieldstation import store
from fieldstation.errors import BadRequest, FieldstationError
from fieldstation.models import Channel
from fieldstation.points import Batch, Entry, clean_status, parse_location, parse_time, parse_value, plain_int

#: Entries per store.write call on import: one transaction each, big enough to be fast.
IMPORT_BATCH = 1000
#: Bad rows listed on the report (the count is always complete).
MAX_REPORTED_ERRORS = 100
TIME_COLUMNS = ("created_at", "timestamp", "time")
_LOCATION = {"latitude": "latitude", "lat": "latitude", "longitude": "longitude", "long": "longitude"}


@dataclass
class ImportReport:
    """What an upload did: rows read, imported, and why each bad row was refused."""

    rows: int = 0
    imported: int = 0
    readings: int = 0
    batches: int = 0
    errors: list[tuple[int, str]] = field(default_factory=list)
    bad_rows: int = 0
    fatal: str | None = None

    def refuse(self, line: int, message: str) -> None:
        self.bad_rows += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append((line, message))


def import_file(channel: Channel, stream: IO[bytes], zone: dt.tzinfo, *, skip_bad: bool) -> ImportReport:
    """Read a CSV upload and store its rows in batches.

    All-or-nothing by default: one bad row means nothing is written and every
    bad row is reported. With ``skip_bad`` the good rows are written and the
    bad ones reported. Naive times are in the viewer's zone.
    """
    report = ImportReport()
    text = codecs.getreader("utf-8-sig")(stream)
    try:
        entries = _parse(channel, csv.reader(text), zone, report)
    except (UnicodeDecodeError, csv.Error) as exc:
        report.fatal = f"not a readable UTF-8 CSV file: {exc}"
        return report
    if report.fatal or (report.bad_rows and not skip_bad):
        return report
    for start in range(0, len(entries), IMPORT_BATCH):
        chunk = entries[start : start + IMPORT_BATCH]
        try:
            result = store.write(Batch(channel.id, chunk, rate_limited=False, as_given=True))
        except FieldstationError as exc:
            report.fatal = f"rows after {report.imported} imported ones were refused: {exc.message}"
            return report
        report.imported += len(chunk)
        report.readings += result.points
        report.batches += 1
    return report


def _parse(channel: Channel, rows: Iterator[list[str]], zone: dt.tzinfo, report: ImportReport) -> list[Entry]:
    header = next(rows, None)
    if header is None:
        report.fatal = "the file is empty"
        return []
    columns = _columns(channel, [h.strip() for h in header], report)
    if report.fatal:
        return []
    entries = []
    for line, row in enumerate(rows, start=2):
        if not any(cell.strip() for cell in row):
            continue
        report.rows += 1
        try:
            entries.append(_entry(row, columns, zone))
        except FieldstationError as exc:
            report.refuse(line, exc.message)
    return entries


@dataclass(frozen=True, slots=True)
class _Columns:
    time: int
    fields: dict[int, int]  # column index -> field number
    meta: dict[int, str]  # column index -> status/latitude/longitude/elevation


def _columns(channel: Channel, header: list[str], report: ImportReport) -> _Columns:
    by_name = {f.name.lower(): f.number for f in channel.fields}
    numbers = {f.number for f in channel.fields}
    time_col = next((i for i, h in enumerate(header) if h.lower() in TIME_COLUMNS), None)
    if time_col is None:
        report.fatal = "the first row must name a time column (created_at, timestamp or time)"
        return _Columns(0, {}, {})
    fields: dict[int, int] = {}
    meta: dict[int, str] = {}
    unknown = []
    for index, name in enumerate(header):
        key = name.lower()
        if index == time_col or key == "entry_id" or not key:
            continue
        number = plain_int(key[5:]) if key.startswith("field") else None
        if number is not None and number in numbers:
            fields[index] = number
        elif key in by_name:
            fields[index] = by_name[key]
        elif key in ("status", "elevation") or key in _LOCATION:
            meta[index] = _LOCATION.get(key, key)
        else:
            unknown.append(name)
    if unknown:
        report.fatal = f"columns that are not fields of this channel: {', '.join(unknown[:10])}"
    elif not fields:
        report.fatal = "no column names a field of this channel (field1… or a field's name)"
    return _Columns(time_col, fields, meta)


def _entry(row: list[str], columns: _Columns, zone: dt.tzinfo) -> Entry:
    def cell(index: int) -> str:
        return row[index].strip() if index < len(row) else ""

    if not cell(columns.time):
        raise BadRequest("the time is empty")
    ts = parse_time(cell(columns.time), zone)
    values = {number: parse_value(cell(i)) for i, number in columns.fields.items() if cell(i)}
    if not values:
        raise BadRequest("the row has no values")
    given = {name: cell(index) for index, name in columns.meta.items() if cell(index)}
    location = {k: parse_location(v, k) for k, v in given.items() if k != "status"}
    return Entry(
        values=values,
        ts=ts,
        status=clean_status(given.get("status")),
        latitude=location.get("latitude"),
        longitude=location.get("longitude"),
        elevation=location.get("elevation"),
    )
