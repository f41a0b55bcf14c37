"""CSV import into a channel, through the store, with a report of each bad row by line.

Reads what the download (``fieldstation.export.channel_csv``) writes — ``time,
entry_id,<field names>,status,latitude,longitude,elevation`` — so a downloaded
file uploads again unchanged, and ThingSpeak's export as well: ``created_at``
as ``2026-12-05 01:00:00 UTC`` (or with an offset, ``+0100``), ``entry_id``,
``field1``…``field8``, ``latitude``, ``longitude``, ``elevation``, ``status``.

The dashboard, the management API and ``fieldstation import`` share it. A file
is read twice: once to check every row (nothing is written when one is bad,
unless bad rows are to be skipped), then to write in batches; in between only
the report is kept, so a year of one-minute rows takes no more memory than a day.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO

from fieldstation import store
from fieldstation.errors import BadRequest, FieldstationError
from fieldstation.models import Channel
from fieldstation.points import (
    Batch,
    Entry,
    clean_status,
    parse_location,
    parse_time,
    parse_value,
    plain_int,
    unguard_text,
)

#: Entries per store.write call on import: one transaction each, big enough to be fast.
IMPORT_BATCH = 5000
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


#: A progress callback: how many more bytes of the file were read (each pass reads it once).
Progress = Callable[[int], None]


def import_file(
    channel: Channel,
    stream: IO[bytes],
    zone: dt.tzinfo,
    *,
    skip_bad: bool,
    progress: Progress | None = None,
) -> ImportReport:
    """Read a CSV file and store its rows in batches.

    All-or-nothing by default: one bad row means nothing is written and every
    bad row is reported. With ``skip_bad`` the good rows are written and the
    bad ones reported. Naive times are in ``zone``. A stream that cannot seek
    (a request body) is spooled to a temporary file first.
    """
    if not stream.seekable():
        spooled = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # noqa: SIM115 (closed below)
        shutil.copyfileobj(stream, spooled)
        try:
            return import_file(channel, spooled, zone, skip_bad=skip_bad, progress=progress)
        finally:
            spooled.close()
    start = stream.tell()
    report = ImportReport()
    try:
        for _ in _rows(channel, _reader(stream, progress), zone, report):
            pass
    except (UnicodeDecodeError, csv.Error) as exc:
        report.fatal = f"not a readable UTF-8 CSV file: {exc}"
        return report
    if report.fatal or (report.bad_rows and not skip_bad):
        return report
    stream.seek(start)
    checked = report
    report = ImportReport(rows=checked.rows, errors=checked.errors, bad_rows=checked.bad_rows)
    chunk: list[Entry] = []
    for entry in _rows(channel, _reader(stream, progress), zone, ImportReport()):
        chunk.append(entry)
        if len(chunk) == IMPORT_BATCH and not _write(channel, chunk, report):
            return report
    if chunk:
        _write(channel, chunk, report)
    return report


def _write(channel: Channel, chunk: list[Entry], report: ImportReport) -> bool:
    try:
        result = store.write(Batch(channel.id, chunk, rate_limited=False, as_given=True))
    except FieldstationError as exc:
        report.fatal = f"rows after {report.imported} imported ones were refused: {exc.message}"
        return False
    report.imported += len(chunk)
    report.readings += result.points
    report.batches += 1
    chunk.clear()
    return True


class _Counted:
    """A byte stream that tells ``progress`` how much of it was read."""

    def __init__(self, stream: IO[bytes], progress: Progress) -> None:
        self.stream, self.progress = stream, progress

    def read(self, size: int = -1) -> bytes:
        data = self.stream.read(size)
        self.progress(len(data))
        return data


def _reader(stream: IO[bytes], progress: Progress | None) -> Iterator[tuple[int, list[str]]]:
    """(first line number, cells) of each CSV row; a quoted cell may span lines."""
    source = _Counted(stream, progress) if progress is not None else stream
    reader = csv.reader(codecs.getreader("utf-8-sig")(source))  # type: ignore[arg-type]
    line = 1
    for row in reader:
        yield line, row
        line = reader.line_num + 1


def _parse(channel: Channel, rows: Iterator[list[str]], zone: dt.tzinfo, report: ImportReport) -> list[Entry]:
    """Every good row's entry (bad ones reported): for tests and small files."""
    return list(_rows(channel, ((n, row) for n, row in enumerate(rows, start=1)), zone, report))


def _rows(
    channel: Channel, rows: Iterator[tuple[int, list[str]]], zone: dt.tzinfo, report: ImportReport
) -> Iterator[Entry]:
    first = next(rows, None)
    if first is None:
        report.fatal = "the file is empty"
        return
    header = [h.strip() for h in first[1]]
    columns = _columns(channel, header, report)
    if report.fatal:
        return
    for line, row in rows:
        if not any(cell.strip() for cell in row):
            continue
        report.rows += 1
        try:
            if len(row) > len(header):
                raise BadRequest(f"the row has {len(row)} columns, the first row names {len(header)}")
            yield _entry(row, columns, zone)
        except FieldstationError as exc:
            report.refuse(line, exc.message)


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
        return unguard_text(row[index].strip()) if index < len(row) else ""

    if not cell(columns.time):
        raise BadRequest("the time is empty")
    ts = parse_time(_iso(cell(columns.time)), zone)
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


#: ThingSpeak's CSV time: ``2026-12-05 01:00:00 UTC``, or with the channel's offset ``+0100``.
_THINGSPEAK_TIME = re.compile(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d(?::\d\d(?:\.\d+)?)?) ?(UTC|[+-]\d\d:?\d\d)")


def _iso(text: str) -> str:
    """ThingSpeak's export time as ISO 8601; anything else unchanged (parse_time judges it)."""
    found = _THINGSPEAK_TIME.fullmatch(text)
    if found is None:
        return text
    moment, zone = found.groups()
    return f"{moment}{'+00:00' if zone == 'UTC' else zone}"
