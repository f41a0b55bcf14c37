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
from fieldstation.timeunits import MAX_TS_US, MIN_TS_US

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
_INT_RE = re.compile(r"[+-]?\d{1,20}", re.ASCII)
_UINT_RE = re.compile(r"\d{1,20}", re.ASCII)
_TS_RE = re.compile(r"-?\d{1,20}", re.ASCII)
_FLOAT_START = frozenset("+-.0123456789")
_FLOAT_END = frozenset(".0123456789")
_NUMBER_CHARS = "0123456789.eE+-"
#: Longest line quoted back in an error message.
_QUOTE = 200

FieldValue = float | str


class LineError(ValueError):
    """One line that cannot be parsed; the message says why."""


@dataclass(frozen=True, slots=True)
class Point:
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

    points: list[Point] = field(default_factory=list)
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
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw[:-1] if raw.endswith("\r") else raw
        stripped = line.lstrip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        try:
            result.points.append(parse_line(stripped, scale))
        except LineError as exc:
            result.rejected.append(Rejected(number, line, str(exc)))
    return result


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
    their field's column, without a :class:`Point` per line. Anything else
    goes through :func:`parse_line`.

    :raise ValueError: unknown ``precision`` (the caller answers 400 for the whole request).
    """
    scale = precision_ns(precision)
    # Without backslashes and quotes no line of the body has escapes or strings.
    plain = "\\" not in text and '"' not in text
    if "\r" in text:  # drop the CR of each CRLF line end, as parse() does line by line
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
    for number, line in enumerate(text.split("\n"), start=1):
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
        found = list(map(floordiv, map(mul, map(int, given), repeat(scale)), repeat(1000)))
        if found and max(found) > MAX_TS_US:  # unsigned: never below MIN_TS_US
            return None
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
    if "" in keys or len(set(keys)) != width:
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
    if not text.strip(_NUMBER_CHARS):
        # Made of these characters only, float() takes exactly InfluxDB's float grammar.
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
    if "".join(digits).strip("0123456789+-") or max(map(len, digits)) > 20:
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
        if not key or not value or "=" in value or key in tags:
            return None
        tags[key] = value
    name = ",".join([measurement, *(f"{k}={v}" for k, v in sorted(tags.items()))])
    return _SeriesColumns(name, {})


def _plain_fields(text: str) -> dict[str, FieldValue] | None:
    """The field set of a line without escapes or strings; None if irregular (the full parser decides)."""
    result: dict[str, FieldValue] = {}
    for part in text.split(","):
        key, _, raw = part.partition("=")
        if not key or not raw or "=" in raw or key in result:
            return None
        if not raw.strip(_NUMBER_CHARS):
            # Made of these characters only, float() takes exactly InfluxDB's float grammar.
            try:
                number = float(raw)
            except ValueError:
                return None
            if not math.isfinite(number):
                return None
            result[key] = number
            continue
        try:
            result[key] = _parse_value(raw)
        except LineError:
            return None
    return result


def precision_ns(precision: str) -> int:
    """Nanoseconds per timestamp unit.

    :raise ValueError: not one of InfluxDB's precisions.
    """
    try:
        return PRECISION_NS[precision]
    except KeyError:
        raise ValueError(f"invalid precision {precision[:20]!r} (use n, u, ms, s, m or h)") from None


def parse_line(line: str, scale: int = 1) -> Point:
    """Parse one non-empty, non-comment line; ``scale`` is nanoseconds per timestamp unit.

    :raise LineError: the line is malformed.
    """
    if "\\" not in line and '"' not in line:
        point = _parse_plain(line, scale)
        if point is not None:
            return point
    return parse_line_slow(line, scale)


def _parse_plain(line: str, scale: int) -> Point | None:
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
        if not key or not value or "=" in value or key in tags:
            return None
        tags[key] = value
    fields: dict[str, FieldValue] = {}
    for part in fields_text.split(","):
        key, _, raw = part.partition("=")
        if not key or not raw or "=" in raw or key in fields:
            return None
        fields[key] = _parse_value(raw)
    return Point(measurement, tuple(sorted(tags.items())), tuple(fields.items()), _parse_ts(ts_text, scale))


def parse_line_slow(line: str, scale: int = 1) -> Point:
    """The full parser: escapes, quoted strings and every error message.

    :raise LineError: the line is malformed.
    """
    key_end = _find_unescaped_space(line, 0, quotes=False)
    if key_end < 0:
        raise LineError("missing fields")
    series = line[:key_end]
    fields_start = key_end + 1
    fields_end = _find_unescaped_space(line, fields_start, quotes=True)
    fields_text = line[fields_start:] if fields_end < 0 else line[fields_start:fields_end]
    ts_text = "" if fields_end < 0 else line[fields_end + 1 :]
    measurement, tags = _parse_series(series)
    fields = _parse_fields(fields_text)
    return Point(measurement, tags, fields, _parse_ts(ts_text, scale))


def _find_unescaped_space(line: str, start: int, *, quotes: bool) -> int:
    """Index of the first space not escaped (and, for fields, not inside a string), or -1."""
    i, n, in_string = start, len(line), False
    while i < n:
        char = line[i]
        if char == "\\":
            i += 2
            continue
        if quotes and char == '"' and (in_string or _opens_value(line, i, start)):
            in_string = not in_string
        elif char == " " and not in_string:
            return i
        i += 1
    if in_string:
        raise LineError("unbalanced quotes")
    return -1


def _opens_value(text: str, i: int, start: int) -> bool:
    """A quote opens a string only where a field value starts: right after an unescaped ``=``."""
    if i - 1 < start or text[i - 1] != "=":
        return False
    run = 0
    j = i - 2
    while j >= start and text[j] == "\\":
        run += 1
        j -= 1
    return run % 2 == 0


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


def _parse_series(series: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    parts = split_unescaped(series, ",")
    measurement = unescape(parts[0])
    if not measurement:
        raise LineError("missing measurement")
    tags: dict[str, str] = {}
    for part in parts[1:]:
        pieces = split_unescaped(part, "=")
        if len(pieces) != 2 or not pieces[0] or not pieces[1]:
            raise LineError(f"invalid tag format {part[:40]!r}")
        key = unescape(pieces[0])
        if key in tags:
            raise LineError(f"duplicate tag {key[:40]!r}")
        tags[key] = unescape(pieces[1])
    return measurement, tuple(sorted(tags.items()))


def _split_fields(text: str) -> list[str]:
    """Split the field set on commas outside escapes and quoted strings."""
    parts, start, i, in_string = [], 0, 0, False
    while i < len(text):
        char = text[i]
        if char == "\\":
            i += 2
            continue
        if char == '"' and (in_string or _opens_value(text, i, 0)):
            in_string = not in_string
        elif char == "," and not in_string:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    parts.append(text[start:])
    return parts


def _parse_fields(text: str) -> tuple[tuple[str, FieldValue], ...]:
    if not text:
        raise LineError("missing fields")
    fields: dict[str, FieldValue] = {}
    for part in _split_fields(text):
        eq = _first_unescaped(part, "=")
        if eq <= 0:
            raise LineError(f"invalid field format {part[:40]!r}")
        key = unescape(part[:eq])
        if key in fields:
            raise LineError(f"duplicate field {key[:40]!r}")
        fields[key] = _parse_value(part[eq + 1 :])
    return tuple(fields.items())


def _first_unescaped(text: str, char: str) -> int:
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == char:
            return i
        i += 1
    return -1


def _parse_value(raw: str) -> FieldValue:
    if not raw:
        raise LineError("missing field value")
    if raw[0] == '"':
        if len(raw) < 2 or raw[-1] != '"' or ends_escaped(raw[:-1]):
            raise LineError("invalid string field value")
        text = unescape(raw[1:-1], '"\\')
        if len(text) > MAX_TEXT or UNSTORABLE.search(text):
            raise LineError(f"string values are at most {MAX_TEXT} characters, without control characters")
        return text
    if raw in _TRUE:
        return 1.0
    if raw in _FALSE:
        return 0.0
    if raw[-1] == "i":
        if not _INT_RE.fullmatch(raw[:-1]):
            raise LineError(f"invalid integer {raw[:40]!r}")
        return _checked_int(int(raw[:-1]), -(2**63), 2**63 - 1)
    if raw[-1] == "u":
        if not _UINT_RE.fullmatch(raw[:-1]):
            raise LineError(f"invalid unsigned integer {raw[:40]!r}")
        return _checked_int(int(raw[:-1]), 0, 2**64 - 1)
    if raw[0] in _FLOAT_START and raw[-1] in _FLOAT_END and raw.isascii() and "_" not in raw:
        # Plain decimal numbers (nearly all values) skip the regex; float() refuses the rest.
        try:
            number = float(raw)
        except ValueError:
            raise LineError(f"invalid number {raw[:40]!r}") from None
    elif not _FLOAT_RE.fullmatch(raw):
        raise LineError(f"invalid number {raw[:40]!r}")
    else:
        number = float(raw)
    if not math.isfinite(number):
        raise LineError(f"invalid number {raw[:40]!r} (out of range)")
    return number


def ends_escaped(text: str) -> bool:
    """True when ``text`` ends in an odd run of backslashes (the closing quote is escaped)."""
    run = len(text) - len(text.rstrip("\\"))
    return run % 2 == 1


def _checked_int(value: int, low: int, high: int) -> float:
    if not low <= value <= high:
        raise LineError("integer out of range")
    return float(value)


def _parse_ts(text: str, scale: int) -> int | None:
    if not text:
        return None
    if not _TS_RE.fullmatch(text):
        raise LineError(f"bad timestamp {text[:40]!r}")
    ts_us = int(text) * scale // 1000
    if not MIN_TS_US <= ts_us <= MAX_TS_US:
        raise LineError("timestamp out of range (1900-01-01 .. 2262-04-11)")
    return ts_us
