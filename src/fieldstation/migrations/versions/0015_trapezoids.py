"""Rollups: the trapezoid area of each slot's readings, for InfluxQL's integral() from the rollups.

Rollup slots gain ``trap``: within the slot, the area under the straight lines between
successive readings (value x microseconds, no gap rule), as InfluxDB's ``integral()``
adds it up. Every hour with readings is marked stale so the next refresh fills it in.

Revision ID: 0015_trapezoids
Revises: 0014_energy
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0015_trapezoids'
down_revision = '0014_energy'
branch_labels = None
depends_on = None

ROLLUPS = ('rollup_minute', 'rollup_hour', 'rollup_day')


def upgrade():
    for table in ROLLUPS:
        op.add_column(table, sa.Column('trap', sa.Float(), nullable=True))
    op.execute(
        "INSERT INTO rollup_dirty (field_id, ts, gen) "
        "SELECT DISTINCT field_id, ((ts + 2208992400000000) / 3600000000) * 3600000000 - 2208992400000000, 1 "
        "FROM readings WHERE true "
        "ON CONFLICT (field_id, ts) DO UPDATE SET gen = rollup_dirty.gen + 1"
    )


def downgrade():
    for table in ROLLUPS:
        op.drop_column(table, 'trap')
