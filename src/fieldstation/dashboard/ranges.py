"""Which time window and zone a page shows: range presets, custom ranges and the viewer's zone."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote

from fieldstation.errors import BadRequest, FieldstationError
from fieldstation.points import get_zone, parse_time, plain_int
from fieldstation.timeunits import DAY, HOUR, US, now_us

#: The issue's presets, in the order the page shows them.
PRESETS: dict[str, int] = {
    "1h": HOUR,
    "12h": 12 * HOUR,
    "24h": DAY,
    "7d": 7 * DAY,
    "30d": 30 * DAY,
    "1y": 365 * DAY,
}
DEFAULT_PRESET = "24h"
#: Cookie the page script sets to the browser's IANA zone (Intl.DateTimeFormat).
ZONE_COOKIE = "fs_tz"
#: Cookies the page script sets to the chart columns' widths in CSS pixels (field charts, two-axis chart).
WIDTH_COOKIE = "fs_w"
WIDE_COOKIE = "fs_ww"
MAX_SPAN = 20 * 366 * DAY


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open window ``[start, end)`` and the preset it came from (None when custom)."""

    start: int
    end: int
    preset: str | None

    def query(self) -> dict[str, str]:
        """URL parameters that reproduce this window."""
        if self.preset is not None:
            return {"range": self.preset}
        return {"start": str(self.start), "end": str(self.end)}


def viewer_zone(args: Mapping[str, str], cookies: Mapping[str, str]) -> dt.tzinfo:
    """``?tz=`` (or ThingSpeak's ``timezone``), else the browser's zone cookie, else UTC.

    A bad zone in the URL is the caller's mistake (400); a bad cookie is ignored.
    """
    name = args.get("tz") or args.get("timezone")
    if name:
        return get_zone(name)
    try:
        return get_zone(unquote(cookies.get(ZONE_COOKIE) or ""))  # the script URL-encodes the "/"
    except FieldstationError:
        return dt.UTC


def window(args: Mapping[str, str], zone: dt.tzinfo, *, now: int | None = None) -> Window:
    """The window a request asks for.

    ``range`` is a preset ending now; ``start``/``end`` are a custom range (ISO
    times in the viewer's zone, as ``<input type=datetime-local>`` sends them, or
    epoch µs); ``days``/``minutes`` are ThingSpeak's chart parameters.

    :raise BadRequest: unknown preset, unreadable time, or end before start.
    """
    end_now = now_us() if now is None else now
    preset = args.get("range")
    if preset:
        if preset not in PRESETS:
            raise BadRequest(f"range must be one of {', '.join(PRESETS)}", code="bad_range")
        return Window(end_now - PRESETS[preset], end_now, preset)
    for name, unit in (("days", DAY), ("minutes", 60 * US)):
        if args.get(name):
            try:
                count = float(args[name])
            except ValueError:
                raise BadRequest(f"{name} must be a number", code="bad_range") from None
            if not 0 < count * unit <= MAX_SPAN:
                raise BadRequest(f"{name} out of range", code="bad_range")
            return Window(end_now - int(count * unit), end_now, None)
    if args.get("start") or args.get("end"):
        end_text, start_text = args.get("end"), args.get("start")
        end = _time(end_text, zone) if end_text else end_now
        start = _time(start_text, zone) if start_text else end - DAY
        if end <= start:
            raise BadRequest("the range must end after it starts", code="bad_range")
        if end - start > MAX_SPAN:
            raise BadRequest("a range may span at most 20 years", code="bad_range")
        return Window(start, end, None)
    return Window(end_now - PRESETS[DEFAULT_PRESET], end_now, DEFAULT_PRESET)


def _time(text: str, zone: dt.tzinfo) -> int:
    return parse_time(text.strip(), zone)


def chart_width(
    args: Mapping[str, str], cookies: Mapping[str, str], default: int = 800, *, wide: bool = False
) -> int:
    """Chart width in pixels from ``?width=`` (``?wide=``) or the page script's cookie, 240 to 4000.

    Drawing at the displayed width keeps labels at their size on a phone
    instead of scaling an 800-pixel drawing down.
    """
    param, cookie = ("wide", WIDE_COOKIE) if wide else ("width", WIDTH_COOKIE)
    for raw in (args.get(param), cookies.get(cookie)):
        pixels = plain_int(raw or "")
        if pixels is not None:
            return min(max(pixels, 240), 4000)
    return default


def chart_height(args: Mapping[str, str], default: int = 260) -> int:
    """Chart height from ``?height=``, kept between 120 and 2000."""
    pixels = plain_int(args.get("height", ""))
    return min(max(pixels, 120), 2000) if pixels is not None else default
