"""InfluxDB 1.x line protocol: text -> points. Pure: no Flask, no database.

Grammar (docs.influxdata.com, "Line protocol reference", 1.x)::

    measurement[,tag=value...] field=value[,field=value...] [timestamp]

Measurements escape ``,`` and space with a backslash; tag keys, tag values and
field keys also escape ``=``. String field values are double-quoted with ``\\"``
and ``\\\\`` escaped. A number without a suffix is a float, ``i`` marks an
integer and ``u`` an unsigned integer; booleans are ``t``/``true``/``f``/``false``
in any of InfluxDB's spellings. Lines starting with ``#`` are comments.

InfluxDB keeps the lines it can parse and reports the others (a "partial
write"), so :func:`parse` returns both instead of raising on the first error.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import repeat
from operator import floordiv, itemgetter, mul

from fieldstation.points import MAX_TEXT, UNSTORABLE

#: Nanoseconds per unit of the ``precision`` query parameter (InfluxDB 1.x names and aliases).
PRECISION_NS = {
    "": 1,
    "n": 1,
    "ns": 1,
    "u": 1_000,
    "us": 1_000,
    "µ": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}
_TRUE = {"t", "T", "true", "True", "TRUE"}
_FALSE = {"f", "F", "false", "False", "FALSE"}
# ASCII only: Python's \d also matches other scripts' digits, which InfluxDB does not take.
_FLOAT_RE = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INT_RE = re.compile(r"-?\d+", re.ASCII)
_TS_RE = re.compile(r"-?\d+", re.ASCII)
#: InfluxDB's range of times in nanoseconds (1677-09-21 .. 2262-04-11).
MIN_NS = -(2**63) + 2
MAX_NS = 2**63 - 2
_FLOAT_START = frozenset("+-.0123456789")
_FLOAT_END = frozenset(".0123456789")
_NUMBER_CHARS = "0123456789.eE+-"
#: Longest line quoted back in an error message.
_QUOTE = 200

FieldValue = float | str


class LineError(ValueError):
    """One line that cannot be parsed; the message says why."""


class FieldTypeConflict(ValueError):
    """A line gives one field key values of two types: InfluxDB refuses the whole request for it."""


@dataclass(frozen=True, slots=True)
class LinePoint:
    """One parsed line: its series key, fields in line order and timestamp (µs, or None)."""

    measurement: str
    tags: tuple[tuple[str, str], ...]
    fields: tuple[tuple[str, FieldValue], ...]
    ts: int | None

    @property
    def series(self) -> str:
        """The series key as InfluxDB spells it: escaped measurement and sorted, escaped tags."""
        parts = [escape_measurement(self.measurement)]
        parts += [f"{escape_key(k)}={escape_key(v)}" for k, v in self.tags]
        return ",".join(parts)

    def field_name(self, key: str) -> str:
        """The channel field a value of this point goes to: ``<series> <field key>``."""
        return f"{self.series} {escape_key(key)}"


@dataclass(frozen=True, slots=True)
class Rejected:
    """A line that was not written, with its 1-based number and the reason."""

    number: int
    line: str
    reason: str

    def __str__(self) -> str:
        quoted = self.line if len(self.line) <= _QUOTE else self.line[:_QUOTE] + "…"
        return f"unable to parse '{quoted}' (line {self.number}): {self.reason}"


@dataclass(slots=True)
class Parsed:
    """The points of a body and the lines that were rejected."""

    points: list[LinePoint] = field(default_factory=list)
    rejected: list[Rejected] = field(default_factory=list)


def escape_measurement(text: str) -> str:
    """Escape a measurement name as line protocol does (comma and space)."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace(" ", "\\ ")


def escape_key(text: str) -> str:
    """Escape a tag key, tag value or field key (comma, equals sign and space)."""
    return text.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def parse(text: str, precision: str = "") -> Parsed:
    """Parse a whole body; good lines become points, bad ones are reported, none raise.

    :raise ValueError: unknown ``precision`` (the caller answers 400 for the whole request).
    """
    scale = precision_ns(precision)
    result = Parsed()
    for number, line in _lines(text):
        stripped = _skip_blanks(line, 0)
        if stripped == len(line) or line[stripped] == "#":
            continue
        try:
            result.points.append(parse_line(line[stripped:], scale))
        except LineError as exc:
            result.rejected.append(Rejected(number, line, str(exc)))
    return result


def _lines(text: str) -> list[tuple[int, str]]:
    """The body's lines with the number of the physical line each starts on.

    A newline inside a quoted string value does not end the line (InfluxDB's
    line scanner); a CR before a line's end is dropped (Windows clients).
    """
    if '"' not in text:
        return [(number, raw.removesuffix("\r")) for number, raw in enumerate(text.split("\n"), start=1)]
    out, i, n, number = [], 0, len(text), 1
    find = _LINE_EVENTS.search
    while i <= n:
        start = i
        quoted = in_fields = False
        equals = commas = 0
        while True:
            found = find(text, i)  # letters and digits change nothing: jump to the next event
            if found is None:
                i = n
                break
            i = found.start()
            char = text[i]
            if char == "\\" and i + 2 < n:
                i += 2
                continue
            if char == " ":
                in_fields = True
            if in_fields:
                if not quoted and char == "=":
                    equals += 1
                elif not quoted and char == ",":
                    commas += 1
                elif char == '"' and equals > commas:
                    quoted = not quoted
            if char == "\n" and not quoted:
                break
            i += 1
        line = text[start:i]
        out.append((number, line.removesuffix("\r")))
        number += line.count("\n") + 1
        i += 1
    return out


#: Inside a quoted string only these two matter.
_QUOTED_EVENTS = re.compile(r'[\\"]')
#: The characters that can change _lines' state; the others are skipped over in C.
_LINE_EVENTS = re.compile(r'[\\ =,"\n]')


#: Values of one channel field, by timestamp (µs; None: the line had none, the server stamps it).
Column = dict[int | None, FieldValue]


@dataclass(slots=True)
class Columns:
    """A body as the write path stores it: values by channel field name and timestamp.

    A later line's value for the same field and time replaces an earlier one,
    as InfluxDB overwrites.
    """

    #: ``<series> <field key>`` (the channel field's name) -> its values by timestamp.
    values: dict[str, Column] = field(default_factory=dict)
    #: The timestamps of the parsed lines, each once, in order of first appearance.
    times: dict[int | None, None] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    #: How many lines parsed.
    lines: int = 0


def parse_columns(text: str, precision: str = "") -> Columns:
    """Parse a whole body straight into :class:`Columns`; bad lines are reported, none raise.

    Lines parse, or are rejected with the same reasons, exactly as with
    :func:`parse`; this is the write path's form of it, in three tiers. A body
    of regular lines (see :func:`_parse_uniform`) is parsed column by column.
    Otherwise lines without escapes or strings take a fast path: each distinct
    series and timestamp text is parsed once, and values go straight into
    their field's column, without a :class:`LinePoint` per line. Anything else
    goes through :func:`parse_line`.

    :raise ValueError: unknown ``precision`` (the caller answers 400 for the whole request).
    """
    scale = precision_ns(precision)
    # Without backslashes and quotes no line of the body has escapes or strings.
    # Tabs: InfluxDB skips them before the fields and the timestamp, so such lines take parse_line.
    plain = "\\" not in text and '"' not in text and "\t" not in text
    if plain and "\r" in text:  # drop the CR of each CRLF line end, as _lines() does line by line
        text = text.replace("\r\n", "\n").removesuffix("\r")
    if plain:
        uniform = _parse_uniform(text, scale)
        if uniform is not None:
            return uniform
    out = Columns()
    values, times = out.values, out.times
    #: Series text as written -> its columns by field key; None: not a plain, valid series.
    series_columns: dict[str, _SeriesColumns | None] = {"": None}
    stamps: dict[str, int | None] = {"": None}
    point_columns: dict[tuple[str, tuple[tuple[str, str], ...], str], Column] = {}
    lines = 0
    for number, line in enumerate(text.split("\n"), start=1) if plain else _lines(text):
        if plain:
            parts = line.split(" ")
            count = len(parts)
            series = parts[0] if count == 2 or count == 3 else ""
            columns = series_columns.get(series, _UNSEEN)
            if columns is _UNSEEN:
                columns = series_columns[series] = _plain_series(series)
            if columns is not None:
                ts_text = parts[2] if count == 3 else ""
                ts = stamps.get(ts_text, _UNSEEN_TS)
                if ts is _UNSEEN_TS:
                    try:
                        ts = stamps[ts_text] = _parse_ts(ts_text, scale)
                    except LineError:
                        ts = _UNSEEN_TS
                line_values = None if ts is _UNSEEN_TS else _plain_fields(parts[1])
                if line_values is not None:
                    by_key = columns.by_key
                    for key, value in line_values.items():
                        column = by_key.get(key)
                        if column is None:
                            column = by_key[key] = values.setdefault(f"{columns.name} {key}", {})
                        column[ts] = value
                    times[ts] = None
                    lines += 1
                    continue
        # Everything else, including every error: the full parser, line by line.
        stripped = line.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        try:
            point = parse_line(stripped, scale)
        except LineError as exc:
            out.rejected.append(Rejected(number, line, str(exc)))
            continue
        for key, value in point.fields:
            ident = (point.measurement, point.tags, key)
            column = point_columns.get(ident)
            if column is None:
                column = point_columns[ident] = values.setdefault(point.field_name(key), {})
            column[point.ts] = value
        times[point.ts] = None
        lines += 1
    out.lines = lines
    return out


def _parse_uniform(text: str, scale: int) -> Columns | None:
    """A body of regular lines, parsed column by column; None unless every line is regular.

    Regular: ``series field=number[,field=number…] timestamp`` (the timestamp
    may be empty) without escapes, strings or comments, each series with the
    same field keys in the same order on every line, every field's numbers
    all plain floats or all ``i`` integers, and no field and time twice. That
    is what devices and clients send in bulk, and str methods and map() then
    do the work in C: Python loops over the lines once, to group them by
    series, and never over single values. Anything else returns None and is
    parsed line by line, which decides every irregular case.
    """
    body = text.removesuffix("\n")
    lines = body.split("\n")
    # Exactly three parts per line: blank lines fail here, and a leading blank,
    # tab or "#" (comment) makes a series that _plain_series refuses.
    if list(map(str.count, lines, repeat(" "))).count(2) != len(lines):
        return None
    tokens = body.replace("\n", " ").split(" ")
    series_col, fields_col, stamp_col = tokens[0::3], tokens[1::3], tokens[2::3]
    stamps = _parse_stamps(list(dict.fromkeys(stamp_col)), scale)
    if stamps is None:
        return None
    by_series: dict[str, list[int]] = {}
    for index, series in enumerate(series_col):
        indexes = by_series.get(series)
        if indexes is None:
            by_series[series] = [index]
        else:
            indexes.append(index)
    out = Columns()
    for series, indexes in by_series.items():
        plain = _plain_series(series)
        if plain is None:
            return None
        if len(indexes) == 1:
            fields, times = [fields_col[indexes[0]]], [stamps[stamp_col[indexes[0]]]]
        else:
            pick = itemgetter(*indexes)
            fields, times = pick(fields_col), list(map(stamps.__getitem__, pick(stamp_col)))
        columns = _uniform_fields(fields, times)
        if columns is None:
            return None
        for key, column in columns.items():
            name = f"{plain.name} {key}"
            known = out.values.get(name)
            if known is None:
                out.values[name] = column
            elif known.keys() & column.keys():  # tags in another order, same time: lines decide
                return None
            else:
                known.update(column)
    out.times = dict.fromkeys(map(stamps.__getitem__, stamp_col))
    out.lines = len(lines)
    return out


def _parse_stamps(texts: list[str], scale: int) -> dict[str, int | None] | None:
    """Distinct timestamp texts -> µs, as :func:`_parse_ts` gives them; None if one is bad."""
    given = [t for t in texts if t]
    digits = "".join(given)
    if digits.isdigit() and digits.isascii() and max(map(len, given), default=0) <= 20:
        # Unsigned decimal numbers (all of them, nearly always): converted in C.
        nanos = list(map(mul, map(int, given), repeat(scale)))
        if nanos and max(nanos) > MAX_NS:  # unsigned: never below MIN_NS
            return None
        found = list(map(floordiv, nanos, repeat(1000)))
        stamps: dict[str, int | None] = dict(zip(given, found, strict=True))
        if len(given) < len(texts):
            stamps[""] = None
        return stamps
    stamps = {}
    for text in texts:
        try:
            stamps[text] = _parse_ts(text, scale)
        except LineError:
            return None
    return stamps


def _uniform_fields(fields: Sequence[str], times: list[int | None]) -> dict[str, Column] | None:
    """The field sets of one series' lines, all with the same keys, as columns by key; else None."""
    keys = [part.partition("=")[0] for part in fields[0].split(",")]
    width = len(keys)
    if "" in keys or "time" in keys or len(set(keys)) != width:
        return None
    joined = ",".join(fields)
    parts = joined.split(",")
    if len(parts) != width * len(fields) or list(map(str.count, parts, repeat("="))).count(1) != len(parts):
        return None
    flat = joined.replace(",", "=").split("=")  # key, value, key, value… (one "=" in each part)
    if flat[0::2] != keys * len(fields):
        return None
    raws = flat[1::2]
    columns: dict[str, Column] = {}
    for offset, key in enumerate(keys):
        numbers = _uniform_numbers(raws[offset::width])
        if numbers is None:
            return None
        column: Column = dict(zip(times, numbers, strict=True))
        if len(column) != len(times):  # the same time twice: lines decide which value stays
            return None
        columns[key] = column
    return columns


def _uniform_numbers(raws: list[str]) -> list[float] | None:
    """One field's values when all are plain floats or all ``i`` integers (as _parse_value reads them)."""
    text = "".join(raws)
    if not text.strip(_NUMBER_CHARS) and "+" not in map(itemgetter(slice(0, 1)), raws):
        # Made of these characters only and not starting with "+", float() takes exactly InfluxDB's floats.
        try:
            numbers = list(map(float, raws))
        except ValueError:
            return None
        if math.inf in numbers or -math.inf in numbers:  # out of range (these characters make no NaN)
            return None
        return numbers
    if not all(map(str.endswith, raws, repeat("i"))):  # any other "i" fails the digit check below
        return None
    digits = list(map(itemgetter(slice(None, -1)), raws))
    if "".join(digits).strip("0123456789-") or max(map(len, digits)) > 20:
        return None
    try:
        integers = list(map(int, digits))  # refuses an empty text and misplaced signs
    except ValueError:
        return None
    if min(integers) < -(2**63) or max(integers) > 2**63 - 1:
        return None
    return list(map(float, integers))


@dataclass(slots=True)
class _SeriesColumns:
    """A plain series: its name as fields are named, and its columns by field key."""

    name: str
    by_key: dict[str, Column]


#: Markers for "not looked at yet" in parse_columns' caches (no real series or timestamp is either).
_UNSEEN = _SeriesColumns("", {})
_UNSEEN_TS = -(2**80)


def _plain_series(series: str) -> _SeriesColumns | None:
    """``measurement[,tag=value…]`` without escapes, as :func:`_parse_plain` takes it; else None.

    Without escapes the text is its own escaped form; only the tags need sorting.
    """
    if not series or series[0] in "\t#":  # leading tab or a comment: parse() strips or skips it
        return None
    measurement, *tag_parts = series.split(",")
    if not measurement:
        return None
    tags: dict[str, str] = {}
    for part in tag_parts:
        key, _, value = part.partition("=")
        if not key or not value or "=" in value or key in tags or key == "time":
            return None
        tags[key] = value
    name = ",".join([measurement, *(f"{k}={v}" for k, v in sorted(tags.items()))])
    return _SeriesColumns(name, {})


def _plain_fields(text: str) -> dict[str, FieldValue] | None:
    """The field set of a line without escapes or strings; None if irregular (the full parser decides)."""
    result: dict[str, FieldValue] = {}
    for part in text.split(","):
        key, _, raw = part.partition("=")
        if not key or not raw or "=" in raw or key in result or key == "time":
            return None
        value = _plain_value(raw)
        if value is None:
            return None
        result[key] = value
    return result


def _plain_value(raw: str) -> float | None:
    """A plain float, ``i`` integer or boolean as InfluxDB reads it; else None (parse_line decides)."""
    if not raw.strip(_NUMBER_CHARS):
        if raw[0] == "+":  # InfluxDB takes "+" only in an exponent
            return None
        # Made of these characters only, float() takes exactly InfluxDB's float grammar.
        try:
            number = float(raw)
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    if raw in _TRUE:
        return 1.0
    if raw in _FALSE:
        return 0.0
    if raw[-1] == "i" and _INT_RE.fullmatch(raw, 0, len(raw) - 1):
        number = int(raw[:-1])
        return float(number) if -(2**63) <= number < 2**63 else None
    return None


def precision_ns(precision: str) -> int:
    """Nanoseconds per timestamp unit.

    :raise ValueError: not one of InfluxDB's precisions.
    """
    try:
        return PRECISION_NS[precision]
    except KeyError:
        raise ValueError(f"invalid precision {precision[:20]!r} (use n, u, ms, s, m or h)") from None


def parse_line(line: str, scale: int = 1) -> LinePoint:
    """Parse one non-empty, non-comment line; ``scale`` is nanoseconds per timestamp unit.

    :raise LineError: the line is malformed.
    """
    if "\\" not in line and '"' not in line:
        point = _parse_plain(line, scale)
        if point is not None:
            return point
    return parse_line_slow(line, scale)


def _parse_plain(line: str, scale: int) -> LinePoint | None:
    """Fast path for the common line without escapes or strings (plain ``str.split``).

    Returns None for anything irregular, which the full parser then handles
    (and reports) exactly as it would otherwise.
    """
    parts = line.split(" ")
    if len(parts) == 2:
        series, fields_text, ts_text = parts[0], parts[1], ""
    elif len(parts) == 3:
        series, fields_text, ts_text = parts
    else:
        return None
    measurement, *tag_parts = series.split(",")
    if not measurement or not fields_text:
        return None
    tags = {}
    for part in tag_parts:
        key, _, value = part.partition("=")
        if not key or not value or "=" in value or key in tags or key == "time":
            return None
        tags[key] = value
    fields = _plain_fields(fields_text)
    if fields is None or "\t" in line:
        return None
    try:
        ts = _parse_ts(ts_text, scale)
    except LineError:
        return None
    return LinePoint(measurement, tuple(sorted(tags.items())), tuple(fields.items()), ts)


def parse_line_slow(line: str, scale: int = 1) -> LinePoint:
    """The full parser: InfluxDB 1.x's scanner, escapes, quoted strings and every error message.

    It follows InfluxDB's own two kinds of escapes: in the measurement and the
    tags a character is escaped when a backslash precedes it (so ``a\\\\,b``
    escapes the comma), in the field set a backslash skips the character after
    it. Only the listed characters lose their backslash when names are unescaped.

    :raise LineError: the line is malformed.
    """
    n = len(line)
    if not n or line[0] == ",":
        raise LineError("missing measurement")
    i = 0
    has_tags = False
    while True:
        i += 1
        if i >= n:
            raise LineError("missing fields")
        if line[i - 1] == "\\":
            continue
        if line[i] == ",":
            has_tags = True
            break
        if line[i] == " ":
            break
    measurement = _unescape_codes(line[:i], ',=" ')
    tags: dict[str, str] = {}
    if has_tags:
        i, tags = _scan_tags(line, i + 1)
    size = i  # the series key's length: InfluxDB's limit is on the key as written
    fields, i = _scan_fields(line, i)
    for key, _ in fields:
        if size + len(key) + 1 > MAX_KEY_LENGTH:
            raise LineError(f"max key length exceeded: {size + len(key) + 1} > {MAX_KEY_LENGTH}")
    ts_text, i = _scan_time(line, i)
    ts = _parse_ts(ts_text, scale)
    # Only after a timestamp must the rest be blank. Without one, InfluxDB ignores whatever follows
    # a line break (a line that an open quote made span several, whose fields ended before it).
    if ts_text and line[i:].strip(" "):
        raise LineError("point is invalid")
    if "time" in tags:
        raise LineError(f'invalid tag key: input tag "time" on measurement "{measurement}" is invalid')
    # A field called time is dropped (its value still has to parse), as InfluxDB's shard drops it;
    # a line with no other field is refused.
    values = {key: _parse_value(raw) for key, raw in fields}
    if values.pop("time", None) is not None and not values:
        raise LineError(f'invalid field name: input field "time" on measurement "{measurement}" is invalid')
    return LinePoint(measurement, tuple(sorted(tags.items())), tuple(values.items()), ts)


#: InfluxDB's longest series key (measurement, tags and a field key), in bytes as written.
MAX_KEY_LENGTH = 65535


def _scan_tags(line: str, i: int) -> tuple[int, dict[str, str]]:
    """Tags from ``i`` (after the measurement's comma) to the space before the fields."""
    n = len(line)
    tags: dict[str, str] = {}
    while True:
        if i >= n or line[i] in " ,=":
            raise LineError("missing tag key")
        start = i
        while True:
            i += 1
            if i >= n or (line[i] in " ," and line[i - 1] != "\\"):
                raise LineError("missing tag value")
            if line[i] == "=" and line[i - 1] != "\\":
                break
        key = _unescape_codes(line[start:i], ",= ")
        i += 1
        if i >= n or line[i] in ", ":
            raise LineError("missing tag value")
        start = i
        while True:
            i += 1
            if i >= n:
                raise LineError("missing fields")
            if line[i - 1] == "\\":
                continue
            char = line[i]
            if char == "=":
                raise LineError("invalid tag format")
            if char == "," or char == " ":
                break
        if key in tags:
            raise LineError("duplicate tags")
        tags[key] = _unescape_codes(line[start:i], ",= ")
        if line[i] == " ":
            return i, tags
        i += 1


def _skip_blanks(line: str, i: int) -> int:
    n = len(line)
    while i < n and line[i] in " \t":
        i += 1
    return i


def _scan_fields(line: str, i: int) -> tuple[list[tuple[str, str]], int]:
    """The field set from ``i``: its (key, raw value) pairs (a later key wins) and where it ends.

    Checked as InfluxDB's scanner checks it, then split into pairs as InfluxDB's
    field iterator splits them.
    """
    n = len(line)
    start = i = _skip_blanks(line, i)
    quoted = False
    equals = commas = 0
    while i < n:
        if quoted:  # inside a string only a backslash or a quote matters
            found = _QUOTED_EVENTS.search(line, i)
            if found is None:
                break
            i = found.start()
        char = line[i]
        if char == "\\" and i + 1 < n:
            i += 2
            continue
        if char == '"' and equals > commas:
            quoted = not quoted
            i += 1
            continue
        if char == "=" and not quoted:
            equals += 1
            before = line[i - 2] if i >= 2 else ""
            if line[i - 1] in " ," and before != "\\":
                raise LineError("missing field key")
            if i + 1 >= n or line[i + 1] in ", ":
                raise LineError("missing field value")
            after = line[i + 1]
            if after in _NUMBER_START:
                i = _scan_number(line, i + 1)
                continue
            if after != '"':
                i = _scan_boolean(line, i + 1)
                continue
        if char == "," and not quoted:
            commas += 1
        elif char == " " and not quoted:
            break
        i += 1
    if quoted:
        raise LineError("unbalanced quotes")
    if equals == 0 or commas != equals - 1:
        raise LineError("invalid field format")
    return _field_pairs(line[start:i]), i


def _field_pairs(text: str) -> list[tuple[str, str]]:
    """(key, raw value) pairs: keys end at ``=`` not after a backslash, values at a comma outside quotes."""
    pairs: dict[str, str] = {}
    i, n = 0, len(text)
    while i < n:
        start = i
        while i < n and not (text[i] == "=" and (i == 0 or text[i - 1] != "\\")):
            i += 1
        key = _unescape_codes(text[start:i], ',=" ')
        i += 1
        start, quoted = i, False
        while i < n:
            if quoted:  # inside a string only a backslash or a quote matters
                found = _QUOTED_EVENTS.search(text, i)
                if found is None:
                    i = n
                    break
                i = found.start()
            char = text[i]
            if char == "\\" and i + 1 < n and text[i + 1] in '"\\':
                i += 2
                continue
            if char == '"':
                quoted = not quoted
            elif char == "," and not quoted:
                break
            i += 1
        if key:  # InfluxDB skips a field whose key is empty
            raw = text[start:i]
            known = pairs.get(key)
            if known is not None and _value_type(known) != _value_type(raw):
                raise FieldTypeConflict("field type conflict")
            pairs[key] = raw  # the same key again with the same type: the later value wins
        i += 1
    if not pairs:
        raise LineError("missing fields")
    return list(pairs.items())


def _value_type(raw: str) -> str:
    """A raw value's type as InfluxDB's field iterator tells it: by its first and last character."""
    if raw[:1] == '"':
        return "string"
    if raw[:1] in _VALUE_NUMBER:
        return raw[-1] if raw[-1] in "iu" else "float"
    return "boolean"


_NUMBER_START = frozenset("0123456789.-Nn")
_DIGITS = frozenset("0123456789")


def _scan_number(line: str, i: int) -> int:
    """Where a number starting at ``i`` ends; InfluxDB's syntax checks (values are parsed later)."""
    n = len(line)
    start = i
    if line[i] == "-":
        i += 1
        if i == n:
            raise LineError("invalid number")
    integer = decimal = scientific = False
    suffix = ""
    while i < n:
        char = line[i]
        if char == "," or char == " ":
            break
        if char in "iu" and i > start and not integer:  # "u": Fieldstation also takes unsigned integers
            integer, suffix = True, char
        elif char == "." and decimal:
            raise LineError("invalid number")
        elif char == ".":
            decimal = True
        elif i > start and char in "eE":
            scientific = True
        elif char in "+-" and line[i - 1] in "eE":
            pass
        elif char not in _DIGITS:
            raise LineError("invalid number")
        i += 1
    digits = i - start - integer - decimal - (line[start] == "-")
    if (integer and (decimal or scientific)) or digits == 0 or (integer and line[i - 1] != suffix):
        raise LineError("invalid number")
    return i


def _scan_boolean(line: str, i: int) -> int:
    end = i
    n = len(line)
    while end < n and line[end] not in ", ":
        end += 1
    if line[i:end] not in _TRUE and line[i:end] not in _FALSE:
        raise LineError("invalid boolean")
    return end


def _scan_time(line: str, i: int) -> tuple[str, int]:
    """The timestamp's text after the fields (digits, optionally after a minus) and where it ends:
    at a space or a line break."""
    n = len(line)
    start = i = _skip_blanks(line, i)
    while i < n and line[i] not in " \n":
        if not (line[i] in _DIGITS or (i == start and line[i] == "-")):
            raise LineError("bad timestamp")
        i += 1
    return line[start:i], i


def _unescape_codes(text: str, codes: str) -> str:
    """Drop the backslash before each character of ``codes``; other backslashes stay (InfluxDB's unescape)."""
    if "\\" not in text:
        return text
    out, i, n = [], 0, len(text)
    while i < n:
        char = text[i]
        if char == "\\" and i + 1 < n and text[i + 1] in codes:
            out.append(text[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def split_unescaped(text: str, sep: str) -> list[str]:
    """Split on ``sep`` where it is not backslash-escaped (escapes are kept)."""
    parts, current, i = [], [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text):
            current.append(text[i : i + 2])
            i += 2
            continue
        if char == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
        i += 1
    parts.append("".join(current))
    return parts


def unescape(text: str, escapable: str = ',= \\"') -> str:
    r"""Drop the backslash before an escapable character (others stay literal, as in InfluxDB)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        char = text[i]
        if char == "\\" and i + 1 < len(text) and text[i + 1] in escapable:
            out.append(text[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out)


def _parse_value(raw: str) -> FieldValue:
    """A field's raw value by its first character, as InfluxDB's field iterator types it."""
    if not raw:
        raise LineError("missing field value")
    first = raw[0]
    if first == '"':
        text = _unescape_codes(raw[1:-1], '"\\')
        if len(text) > MAX_TEXT or UNSTORABLE.search(text):
            raise LineError(f"string values are at most {MAX_TEXT} characters, without control characters")
        return text
    if first in _VALUE_NUMBER:
        if raw[-1] in "iu" and not _INT_RE.fullmatch(raw, 0, len(raw) - 1):
            raise LineError(f"invalid number {raw[:40]!r}")
        if raw[-1] == "i":
            return _checked_int(int(raw[:-1]), -(2**63), 2**63 - 1)
        if raw[-1] == "u":
            return _checked_int(int(raw[:-1]), 0, 2**64 - 1)
        try:
            number = float(raw)
        except ValueError:
            raise LineError(f"invalid number {raw[:40]!r}") from None
        if not math.isfinite(number):
            raise LineError("invalid float")
        return number
    return 1.0 if raw in _TRUE else 0.0


_VALUE_NUMBER = frozenset("0123456789-.")


def ends_escaped(text: str) -> bool:
    """True when ``text`` ends in an odd run of backslashes (the closing quote is escaped)."""
    run = len(text) - len(text.rstrip("\\"))
    return run % 2 == 1


def _checked_int(value: int, low: int, high: int) -> float:
    if not low <= value <= high:
        raise LineError("integer out of range")
    return float(value)


def _parse_ts(text: str, scale: int) -> int | None:
    """A timestamp's text -> µs (rounded down), as InfluxDB takes it: an int64 in range once scaled."""
    if not text:
        return None
    if not _TS_RE.fullmatch(text):
        raise LineError("bad timestamp")
    number = int(text)
    if not -(2**63) <= number < 2**63:
        raise LineError("bad timestamp: out of int64's range")
    ns = number * scale
    if not MIN_NS <= ns <= MAX_NS:
        raise LineError(f"time outside range {MIN_NS} - {MAX_NS}")
    return ns // 1000
