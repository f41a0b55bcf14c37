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
import itertools
from collections import defaultdict
from dataclasses import dataclass

from fieldstation import rollups
from fieldstation.buckets import Plan, plan
from fieldstation.rollups import CLAMP, Piece
from fieldstation.timeunits import DAY, HOUR

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
    gap = rollups.max_gap_us(field_id)
    pieces = _pieces(field_id, start, end, planned, gap)
    before, after = rollups.neighbours(field_id, start, end)
    area: defaultdict[int, float] = defaultdict(float)
    rise: defaultdict[int, float] = defaultdict(float)
    count: defaultdict[int, int] = defaultdict(int)
    key, last_t, last_v = None, None, 0.0
    if before is not None:
        last_t, last_v = before
    for piece_key, n, t0, v0, t1, v1, piece_area, piece_rise in pieces:
        if last_t is not None:
            if t0 - last_t <= gap:
                if piece_key == key:  # the step lies inside this bucket
                    area[key] += _clamp(last_v) * (t0 - last_t)
                else:
                    _hold(area, planned, last_t, t0, _clamp(last_v), start, end)
            rise[piece_key] += _rise(last_v, v0)
        count[piece_key] += n
        area[piece_key] += piece_area
        rise[piece_key] += piece_rise
        key, last_t, last_v = piece_key, t1, v1
    if last_t is not None and after is not None and after[0] - last_t <= gap:
        _hold(area, planned, last_t, after[0], _clamp(last_v), start, end)
    keys = sorted(count.keys() | area.keys())
    return [Total(planned.start_of(k), count[k], area[k] / HOUR, rise[k]) for k in keys]


def _clamp(value: float) -> float:
    return value if -CLAMP <= value <= CLAMP else min(max(value, -CLAMP), CLAMP)


def _rise(before: float, after: float) -> float:
    """The increase from one reading to the next: a drop is a reset, the new value counts from zero.

    As :func:`fieldstation.rollups.chain_sql` adds it inside a slot (amounts clamped, the
    comparison not), so that a slot's rise can be taken apart again (:func:`_split_day`).
    """
    return _clamp(after) - _clamp(before) if after >= before else _clamp(after)


def _step(t: int, value: float, t_next: int, value_next: float, gap: int) -> tuple[float, float]:
    """The integral (value x µs) and the rise of the step from one reading to the next."""
    held = _clamp(value) * (t_next - t) if t_next - t <= gap else 0.0
    return held, _rise(value, value_next)


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


# -- which slots: local days from day slots --------------------------------------------------

#: Indices into :data:`fieldstation.rollups.LEVELS`.
_HOUR_LEVEL = [width for width, _ in rollups.LEVELS].index(HOUR)
_DAY_LEVEL = [width for width, _ in rollups.LEVELS].index(DAY)


def _pieces(field_id: int, start: int, end: int, planned: Plan, gap: int) -> list[Piece]:
    """The slots to walk, in time order, each inside one bucket.

    Local days (midnight in a zone away from UTC) cut each UTC day slot in two. A day slot
    with one such cut is read whole, with the slots of its smaller side (a few hour slots,
    and minute slots or readings where the zone's offset is not whole hours), and the other
    side is the difference (:func:`_split_day`): a year of Berlin days reads 365 day slots
    and about 730 hour slots instead of 8,760. UTC days and widths under a day read the
    coarsest level that fits, as every other aggregate does.
    """
    if not planned.offsets or planned.aligned(DAY):
        return rollups.chain_pieces(field_id, start, end, planned)
    cuts = _cuts(start, end, planned)
    if cuts is None:
        return rollups.chain_pieces(field_id, start, end, planned)
    rollups.fresh(field_id)
    inside: defaultdict[int, list[int]] = defaultdict(list)
    for cut in cuts:
        if cut % DAY:
            inside[cut // DAY * DAY].append(cut)
    split = {day: c[0] for day, c in inside.items() if len(c) == 1 and start <= day and day + DAY <= end}
    edges = {start, end, *split, *(day + DAY for day in split)}
    edges.update(c for c in cuts if c // DAY * DAY not in split)
    runs: list[rollups.Span] = []
    smaller: dict[int, tuple[int, int]] = {}
    for a, z in itertools.pairwise(sorted(edges)):
        if a in split:
            cut = split[a]
            smaller[a] = (cut, z) if cut - a >= DAY // 2 else (a, cut)
            runs += [(_DAY_LEVEL, a, z), *rollups.spans(*smaller[a], _HOUR_LEVEL)]
        else:
            runs += rollups.spans(a, z, _DAY_LEVEL)
    found = rollups.level_slots(field_id, runs, planned)
    plain: list[list[Piece]] = []
    whole: dict[int, Piece] = {}
    parts: defaultdict[int, list[Piece]] = defaultdict(list)
    for level, rows in found.items():
        mine = [row for row in rows if row[2] // DAY * DAY in smaller]
        plain.append([row for row in rows if row[2] // DAY * DAY not in smaller])
        for row in mine:
            if level == _DAY_LEVEL:
                whole[row[2] // DAY * DAY] = row
            else:
                parts[row[2] // DAY * DAY].append(row)
    return rollups.merged([*plain, _split_days(field_id, whole, parts, smaller, split, planned, gap)])


def _cuts(start: int, end: int, planned: Plan) -> list[int] | None:
    """The bucket edges inside ``(start, end)``; None where the plan's keys disagree with them."""
    first, last = planned.key_of(start), planned.key_of(end - 1)
    cuts = [planned.start_of(k) for k in range(first + 1, last + 1)]
    if any(planned.key_of(c) != k or planned.key_of(c - 1) != k - 1 for k, c in enumerate(cuts, first + 1)):
        return None  # a skipped local midnight: leave it to the plain walk
    return cuts


def _split_days(
    field_id: int,
    whole: dict[int, Piece],
    parts: dict[int, list[Piece]],
    smaller: dict[int, tuple[int, int]],
    split: dict[int, int],
    planned: Plan,
    gap: int,
) -> list[Piece]:
    """Each cut UTC day as its two sides: the smaller side's slots and the rest of the day slot.

    The rest needs the reading next to the cut on its own side, which no slot holds: one
    statement finds it for every day (the last reading before the cut, or the first after).
    """
    partial = [day for day in whole if parts.get(day) and whole[day][1] > sum(p[1] for p in parts[day])]
    rest_after = {day for day in partial if smaller[day][0] == day}  # the small side is before the cut
    near_last = rollups.edge_readings(
        field_id, [(d, split[d]) for d in partial if d not in rest_after], last=True
    )
    near_first = rollups.edge_readings(field_id, [(split[d], d + DAY) for d in rest_after], last=False)
    out: list[Piece] = []
    for day, slot in whole.items():
        small = sorted(parts.get(day, []), key=lambda p: p[2])
        if day in rest_after:
            near = near_first.get(split[day])
            out += small
            if near is not None:
                out.append(_rest_after(slot, _chained(small, gap), near, planned.key_of(split[day]), gap))
        elif day in partial:
            near = near_last.get(day)
            if near is not None:
                out.append(_rest_before(slot, _chained(small, gap), near, gap))
            out += small
        elif small:
            out += small  # every reading of the day is on the small side
        else:  # none is: the whole slot lies on the other side
            out.append(slot if smaller[day][0] != day else (planned.key_of(split[day]), *slot[1:]))
    return sorted(out, key=lambda p: p[2])


def _chained(pieces: list[Piece], gap: int) -> Piece:
    """Consecutive pieces as one (its key: the first's), with the steps between them."""
    key, n, t0, v0, t1, v1, area, rise = pieces[0]
    for piece in pieces[1:]:
        held, up = _step(t1, v1, piece[2], piece[3], gap)
        n, area, rise = n + piece[1], area + held + piece[6], rise + up + piece[7]
        t1, v1 = piece[4], piece[5]
    return key, n, t0, v0, t1, v1, area, rise


def _rest_before(slot: Piece, small: Piece, near: tuple[int, float], gap: int) -> Piece:
    """The day slot without its end ``small``; ``near`` is its last reading before the cut."""
    held, up = _step(near[0], near[1], small[2], small[3], gap)
    n, area, rise = slot[1] - small[1], slot[6] - small[6] - held, slot[7] - small[7] - up
    return slot[0], n, slot[2], slot[3], near[0], near[1], area, rise


def _rest_after(slot: Piece, small: Piece, near: tuple[int, float], key: int, gap: int) -> Piece:
    """The day slot without its start ``small``; ``near`` is its first reading after the cut."""
    held, up = _step(small[4], small[5], near[0], near[1], gap)
    n, area, rise = slot[1] - small[1], slot[6] - small[6] - held, slot[7] - small[7] - up
    return key, n, near[0], near[1], slot[4], slot[5], area, rise
