"""Template filters: times in the viewer's zone, relative ages, numbers, query strings."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from urllib.parse import urlencode

from fieldstation.charts import format_time
from fieldstation.dashboard.blueprint import bp
from fieldstation.timeunits import US, now_us, us_to_datetime


@bp.app_template_filter("iso")
def iso(ts: int) -> str:
    """Machine-readable UTC time for ``<time datetime>``."""
    return us_to_datetime(ts).isoformat(timespec="seconds")


@bp.app_template_filter("localtime")
def localtime(ts: int, zone: dt.tzinfo) -> str:
    """``2026-11-24 11:05:09`` in the viewer's zone."""
    return format_time(ts, zone, seconds=True)


@bp.app_template_filter("ago")
def ago(ts: int) -> str:
    """``3 min ago``: how long since ``ts``, coarsely."""
    seconds = max((now_us() - ts) // US, 0)
    for size, unit in ((86_400, "d"), (3600, "h"), (60, "min")):
        if seconds >= size:
            return f"{seconds // size} {unit} ago"
    return f"{seconds} s ago"


@bp.app_template_filter("number")
def number(value: float) -> str:
    """A reading as people write it: no trailing zeros, at most 6 significant digits."""
    return f"{value:.6g}"


@bp.app_template_filter("urlparams")
def urlparams(params: Mapping[str, str | None]) -> str:
    """A query string of the non-empty parameters."""
    return urlencode({k: v for k, v in params.items() if v})
