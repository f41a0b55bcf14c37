"""Energy of power fields and the increase of counters, per time bucket (docs/energy.md).

The rules, which the property test in ``tests/test_energy.py`` restates in plain Python:

* **energy**: each numeric reading holds until the next one, when that one follows within
  the field's ``max_gap_s`` (a longer gap counts no energy, nor does the newest reading,
  which has no next one yet). The held value is split over the buckets (and cut at the
  window's edges) by time, so a reading before midnight counts its share in each day. The
  result is in value-hours: Wh for a field in W, kWh for one in kW.
* **increase**: the sum of the rises from each reading to the next; at a drop (a counter
  reset) the new value counts from zero, as Prometheus's ``increase()`` does, without its
  extrapolation. A rise counts in the bucket of the reading that shows it, whatever the gap.

Inside each rollup slot (:func:`fieldstation.rollups.chain_sql`) the database does the
sums; here only the steps between pieces, a few per bucket, are added.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from fieldstation import rollups
from fieldstation.buckets import Plan, plan
from fieldstation.rollups import CLAMP
from fieldstation.timeunits import HOUR

#: What a field measures; the kind picks the dashboard's chart and its totals.
KINDS = ("gauge", "power", "counter")
#: The kinds whose readings add up over time, and the native API function of each.
TOTAL_OF = {"power": "energy", "counter": "increase"}


@dataclass(frozen=True, slots=True)
class Total:
    """The energy (value-hours) and the increase of one bucket; ``count`` is its readings."""

    start: int
    count: int
    energy: float
    increase: float


def energy_unit(unit: str | None) -> str | None:
    """The unit of a power field's energy: W -> Wh, kW -> kWh (value-hours)."""
    return f"{unit}h" if unit else None


def totals(
    field_id: int, start: int, end: int, every: int, *, tz: str | dt.tzinfo | None = None
) -> list[Total]:
    """Energy and increase per bucket of ``every`` µs over ``[start, end)``, oldest first.

    Buckets that hold readings or a share of a held reading are listed. Readings just
    outside the window count as they do inside it: the one before ``start`` holds into it
    and gives the first reading's rise; the one after ``end`` ends the last hold.

    :raise BadRequest: reversed window, bad width or more than MAX_BUCKETS buckets.
    """
    planned = plan(start, end, every, tz)
    if end <= start:
        return []
    pieces = rollups.chain_pieces(field_id, start, end, planned)
    before, after = rollups.neighbours(field_id, start, end)
    gap = rollups.max_gap_us(field_id)
    area: defaultdict[int, float] = defaultdict(float)
    rise: defaultdict[int, float] = defaultdict(float)
    count: defaultdict[int, int] = defaultdict(int)
    key, last_t, last_v = None, None, 0.0
    if before is not None:
        last_t, last_v = before[0], _clamp(before[1])
    for piece_key, n, t0, v0, t1, v1, piece_area, piece_rise in pieces:
        first = v0 if -CLAMP <= v0 <= CLAMP else _clamp(v0)
        if last_t is not None:
            if t0 - last_t <= gap:
                if piece_key == key:  # the step lies inside this bucket
                    area[key] += last_v * (t0 - last_t)
                else:
                    _hold(area, planned, last_t, t0, last_v, start, end)
            rise[piece_key] += first - last_v if first >= last_v else first
        count[piece_key] += n
        area[piece_key] += piece_area
        rise[piece_key] += piece_rise
        key, last_t, last_v = piece_key, t1, v1 if -CLAMP <= v1 <= CLAMP else _clamp(v1)
    if last_t is not None and after is not None and after[0] - last_t <= gap:
        _hold(area, planned, last_t, after[0], last_v, start, end)
    keys = sorted(count.keys() | area.keys())
    return [Total(planned.start_of(k), count[k], area[k] / HOUR, rise[k]) for k in keys]


def _clamp(value: float) -> float:
    return min(max(value, -CLAMP), CLAMP)


def _hold(
    area: defaultdict[int, float], planned: Plan, a: int, b: int, value: float, start: int, end: int
) -> None:
    """Add ``value`` held over ``[a, b)`` (cut to the window) to each bucket it overlaps."""
    a, b = max(a, start), min(b, end)
    while a < b:
        key = planned.key_of(a)
        edge = planned.start_of(key + 1)
        edge = b if edge <= a else min(edge, b)
        area[key] += value * (edge - a)
        a = edge
