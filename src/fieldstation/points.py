"""What every adapter produces: a batch of entries. Pure: no Flask, no database.

An entry is one timestamp of one channel with values for some of its fields
(by field number) and optional metadata. Timestamps are integer microseconds
since the Unix epoch (UTC); ``None`` means "stamp with the server time".
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fieldstation.errors import BadRequest
from fieldstation.timeunits import MAX_TS_US, MIN_TS_US, datetime_to_us

MAX_TEXT = 255
#: What stored text may not hold: C0 controls but tab, newline and return, U+FFFE/U+FFFF (none of
#: them can be written in XML, which ThingSpeak's ``.xml`` answers are) and lone surrogates (no
#: UTF-8 form, so no database column either).
UNSTORABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

Value = float | str


@dataclass(frozen=True, slots=True)
class Entry:
    """One timestamp's values, keyed by field number, plus metadata."""

    values: Mapping[int, Value]
    ts: int | None = None
    status: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    elevation: float | None = None


#: Values of one field by timestamp (None: the server stamps it).
SeriesValues = dict[int | None, Value]


@dataclass(slots=True)
class Batch:
    """Everything one request/message writes to one channel, in one transaction.

    Values come with their entries, or, from adapters that parse whole series
    at once (line protocol), in ``series``: field number -> values by
    timestamp. Then the entries carry no values of their own, and every
    timestamp of ``series`` is an entry's.
    """

    channel_id: int
    entries: list[Entry] = field(default_factory=list)
    #: The device the write counts as (MAC address or other id): the key's bound device, else the
    #: one the request named. ``auth`` checked it against the allow-list before the batch was made.
    device: str | None = None
    series: dict[int, SeriesValues] | None = None
    #: False for the owner's own imports (the dashboard's CSV upload): the channel's minimum
    #: interval between updates paces devices, not a file of history written in batches.
    rate_limited: bool = True
    #: True for imports of exported data: values are stored without the fields' calibration
    #: (an export is calibrated already); computed fields missing from it are still computed.
    as_given: bool = False

    @classmethod
    def of_series(
        cls, channel_id: int, times: Iterable[int | None], series: dict[int, SeriesValues]
    ) -> Batch:
        """A batch of ``series``, with an entry per timestamp in ``times`` (in that order)."""
        return cls(channel_id, [Entry({}, ts) for ts in times], series=series)

    @property
    def point_count(self) -> int:
        """Number of (field, timestamp, value) readings in the batch."""
        return sum(len(e.values) for e in self.entries) + sum(map(len, (self.series or {}).values()))


def check_ts(ts: int) -> int:
    """Reject timestamps outside the storable range."""
    if not MIN_TS_US <= ts <= MAX_TS_US:
        raise BadRequest("timestamp out of range (1900-01-01 .. 2262-04-11)", code="bad_time")
    return ts


def get_zone(name: str | None) -> dt.tzinfo:
    """Resolve an IANA zone name (ThingSpeak's ``timezone``); UTC when empty."""
    if not name:
        return dt.UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError) as exc:  # OSError: a folder ("America"), a long name
        raise BadRequest(f"unknown time zone {name[:64]!r}", code="bad_timezone") from exc


_EPOCH_RE = re.compile(r"-?\d+(\.\d+)?")
_UNIT_NS = {"s": 10**9, "ms": 10**6, "us": 1000, "u": 1000, "ns": 1}
_EXACT = 10**20


def epoch_to_us(number: float | int | str, unit: str | None = None) -> int:
    """Epoch number -> µs. Without a unit the magnitude decides (s, ms, µs or ns).

    Nanoseconds are truncated to microseconds.
    """
    if type(number) is int and unit is None and -_EXACT < number < _EXACT:
        # The common JSON case, without the Decimal round trip: a power of ten times an
        # integer of at most 20 digits is exact either way; float() rounds as below.
        magnitude = abs(float(number))
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
        return check_ts(number * _UNIT_NS[unit] // 1000)
    text = str(number).strip()
    if not _EPOCH_RE.fullmatch(text):
        raise BadRequest(f"not an epoch timestamp: {text[:40]!r}", code="bad_time")
    if unit is None:
        magnitude = abs(float(text))
        unit = "s" if magnitude < 1e11 else "ms" if magnitude < 1e14 else "us" if magnitude < 1e17 else "ns"
    if unit not in _UNIT_NS:
        raise BadRequest(f"unknown time unit {unit!r}", code="bad_time")
    if unit == "ns" and "." in text:
        raise BadRequest("nanosecond timestamps must be integers", code="bad_time")
    # Decimal keeps fractional seconds exact; nanoseconds truncate to microseconds.
    return check_ts(int(Decimal(text) * _UNIT_NS[unit]) // 1000)


def parse_time(value: object, zone: dt.tzinfo = dt.UTC) -> int:
    """ISO 8601 (any offset; naive times are in ``zone``) or epoch number -> µs.

    Also takes ThingSpeak's ``2017-01-12 13:22:54`` (space instead of ``T``). ``value``
    may be any decoded JSON: an object or a list is a 400 like a boolean.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise BadRequest("timestamp must be a string or number", code="bad_time")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise BadRequest("timestamp must be finite", code="bad_time")
        return epoch_to_us(repr(value) if isinstance(value, float) else value)
    text = value.strip()
    if _EPOCH_RE.fullmatch(text):
        return epoch_to_us(text)
    if text.endswith(("z", "Z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError as exc:
        raise BadRequest(f"not an ISO 8601 time: {value[:40]!r}", code="bad_time") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=zone)
    try:
        return check_ts(datetime_to_us(parsed))
    except OverflowError as exc:
        raise BadRequest("timestamp out of range", code="bad_time") from exc


def parse_value(raw: object) -> Value:
    """A reading's value: a finite number, or (ThingSpeak allows it) a short text.

    Strings that spell a number become numbers; ``nan``/``inf`` are refused.
    """
    if isinstance(raw, bool):
        return 1.0 if raw else 0.0
    if isinstance(raw, int | float):
        try:
            number = float(raw)
        except OverflowError:  # an integer beyond the float range (JSON allows any)
            raise BadRequest("values must be finite numbers", code="bad_value") from None
        if not math.isfinite(number):
            raise BadRequest("values must be finite numbers", code="bad_value")
        return number
    if not isinstance(raw, str):
        raise BadRequest("values must be numbers or strings", code="bad_value")
    text = raw.strip()
    try:
        number = float(text)
    except ValueError:
        if len(text) > MAX_TEXT:
            raise BadRequest(f"text values are at most {MAX_TEXT} characters", code="bad_value") from None
        if UNSTORABLE.search(text):
            raise BadRequest("text values may not hold control characters", code="bad_value") from None
        return text
    if not math.isfinite(number):
        raise BadRequest("values must be finite numbers", code="bad_value")
    return number


#: Integral numbers below this are written without ``.0`` (as ThingSpeak writes them); from it
#: on ``repr`` keeps every digit (1e16 itself would otherwise print as 17 digits of an int).
PLAIN_INTEGER_BELOW = 1e16


def number_text(value: float) -> str:
    """A stored number as every answer writes it: ``21`` for 21.0, ``21.5``, ``1e+16``."""
    return str(int(value)) if value.is_integer() and abs(value) < PLAIN_INTEGER_BELOW else repr(value)


#: A CSV cell a spreadsheet would run as a formula starts with one of these (OWASP's "CSV injection").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def guard_text(text: str) -> str:
    """A text cell as a spreadsheet shows it and never runs it: a leading ``'`` before a formula start.

    A text that itself starts with quotes before a formula start gets one more, so
    :func:`unguard_text` gives every text back as it was: downloads round-trip.
    """
    return "'" + text if text.lstrip("'").startswith(FORMULA_STARTS) else text


def unguard_text(text: str) -> str:
    """A downloaded text cell as it was: without the ``'`` :func:`guard_text` put before it."""
    if text.startswith("'") and text.lstrip("'").startswith(FORMULA_STARTS):
        return text[1:]
    return text


def parse_float(raw: object, name: str) -> float:
    """A finite float parameter (latitude, longitude, elevation)."""
    try:
        number = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise BadRequest(f"{name} must be a number", code="bad_value") from None
    except OverflowError:  # an integer beyond the float range
        raise BadRequest(f"{name} must be finite", code="bad_value") from None
    if not math.isfinite(number):
        raise BadRequest(f"{name} must be finite", code="bad_value")
    return number


#: The largest magnitude of each bounded location member, in degrees.
LOCATION_BOUNDS = {"latitude": 90.0, "longitude": 180.0}


def parse_location(raw: object, name: str) -> float:
    """``latitude``, ``longitude`` (within their degrees) or ``elevation``, read alike by every way in."""
    number = parse_float(raw, name)
    bound = LOCATION_BOUNDS.get(name)
    if bound is not None and not -bound <= number <= bound:
        raise BadRequest(f"{name} must be between -{bound:g} and {bound:g}", code="bad_value")
    return number


def clean_status(raw: object) -> str | None:
    """Status text: at most 255 characters, no control characters but tab and line breaks."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise BadRequest("status must be a string", code="bad_status")
    if len(raw) > MAX_TEXT or UNSTORABLE.search(raw):
        raise BadRequest(
            f"status is at most {MAX_TEXT} characters, without control characters", code="bad_status"
        )
    return raw


_DEVICE_RE = re.compile(r"[A-Za-z0-9:._-]{1,64}")


def normalize_device(raw: str) -> str:
    """A device id (MAC address or similar): letters, digits and ``:-._``, lower-cased."""
    if not _DEVICE_RE.fullmatch(raw):
        raise BadRequest("device ids are 1-64 letters, digits and ':-._'", code="bad_device")
    return raw.lower()


def plain_int(text: str, max_digits: int = 18) -> int | None:
    """A non-negative integer written as 1 to ``max_digits`` ASCII digits, else None.

    Numbers in paths, parameters, cookies and CSV headers go through here: ``int()``
    of a string of more than 4,300 digits raises, and 18 digits always fit a
    database's 64-bit integer.
    """
    if 0 < len(text) <= max_digits and text.isascii() and text.isdigit():
        return int(text)
    return None
