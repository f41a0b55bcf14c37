"""Bucket aggregation over raw readings and the per-minute/hour/day rollups (see docs/query.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fieldstation.query import Partial, _Plan


def aggregate(field_id: int, start: int, end: int, plan: _Plan) -> dict[int, Partial]:
    """Partials by bucket key over ``[start, end)``, oldest first."""
    from fieldstation.query import raw_partials

    return dict(raw_partials(field_id, start, end, plan))
