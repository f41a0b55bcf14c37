"""Read back what a write stored, straight from the database (what a user's query would see)."""

from __future__ import annotations

import sqlalchemy as sa

from fieldstation.extensions import db


def readings(channel_id: int) -> list[tuple[str, int, float | None, str | None]]:
    """(field name, ts, value, text) of a channel, by time then field number."""
    db.session.rollback()
    rows = db.session.execute(
        sa.text(
            "SELECT f.name, r.ts, r.value, r.text FROM readings r JOIN fields f ON f.id = r.field_id "
            "WHERE f.channel_id = :c ORDER BY r.ts, f.number"
        ),
        {"c": channel_id},
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def values_by_field(channel_id: int) -> dict[str, list[float | str | None]]:
    """Field name -> values in time order (text values as text)."""
    out: dict[str, list[float | str | None]] = {}
    for name, _, value, text in readings(channel_id):
        out.setdefault(name, []).append(text if value is None else value)
    return out


def entries(channel_id: int) -> list[tuple[int, int, str | None, float | None, float | None, float | None]]:
    """(entry_id, ts, status, latitude, longitude, elevation) by entry id."""
    db.session.rollback()
    rows = db.session.execute(
        sa.text(
            "SELECT entry_id, ts, status, latitude, longitude, elevation FROM entries "
            "WHERE channel_id = :c ORDER BY entry_id"
        ),
        {"c": channel_id},
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def field_names(channel_id: int) -> list[str]:
    """A channel's field names by number."""
    db.session.rollback()
    rows = db.session.execute(
        sa.text("SELECT name FROM fields WHERE channel_id = :c ORDER BY number"), {"c": channel_id}
    )
    return [r[0] for r in rows]


def count_readings() -> int:
    """Readings in the whole database."""
    db.session.rollback()
    return int(db.session.execute(sa.text("SELECT count(*) FROM readings")).scalar_one())
