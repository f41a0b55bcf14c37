"""Energy and derived values: field kinds, the energy gap, calibration and computed fields;
what the rollups keep for integrals and increases.

Fields gain ``kind`` (gauge, power or counter), ``max_gap_s`` (a power reading
held longer than this counts no energy), ``cal_scale`` / ``cal_offset`` (applied
when a reading is stored) and ``expression`` (a computed field).
``channels.derived`` says a channel has either, so the write path looks
them up only then. ``field_calibrations`` records every calibration change with its time. Rollup
slots gain the times of their first and last reading (``t0``, ``t1``), the
within-slot integral (``area``, value x microseconds) and increase (``rise``);
every hour with readings is marked stale so the next refresh fills them in.

Revision ID: 0014_energy
Revises: 0013_alerts
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0014_energy'
down_revision = '0013_alerts'
branch_labels = None
depends_on = None

ROLLUPS = ('rollup_minute', 'rollup_hour', 'rollup_day')
SLOT_COLUMNS = (('t0', sa.BigInteger()), ('t1', sa.BigInteger()), ('area', sa.Float()), ('rise', sa.Float()))
FIELD_COLUMNS = ('kind', 'max_gap_s', 'cal_scale', 'cal_offset', 'expression')


def upgrade():
    # Plain ADD COLUMN: SQLite alters in place (a batch copy of fields would cascade to readings).
    op.add_column('fields', sa.Column('kind', sa.String(16), nullable=False, server_default='gauge'))
    op.add_column('fields', sa.Column('max_gap_s', sa.Integer(), nullable=False, server_default='3600'))
    op.add_column('fields', sa.Column('cal_scale', sa.Float(), nullable=True))
    op.add_column('fields', sa.Column('cal_offset', sa.Float(), nullable=True))
    op.add_column('fields', sa.Column('expression', sa.Text(), nullable=True))
    op.add_column('channels', sa.Column('derived', sa.Boolean(), nullable=False, server_default=sa.false()))
    op.create_table(
        'field_calibrations',
        sa.Column('id', sa.Integer(), primary_key=True),
        sa.Column('field_id', sa.Integer(), sa.ForeignKey('fields.id', ondelete='CASCADE'), nullable=False),
        sa.Column('since_us', sa.BigInteger(), nullable=False),
        sa.Column('cal_scale', sa.Float(), nullable=True),
        sa.Column('cal_offset', sa.Float(), nullable=True),
    )
    op.create_index('ix_field_calibrations_field', 'field_calibrations', ['field_id', 'since_us'])
    for table in ROLLUPS:
        for name, type_ in SLOT_COLUMNS:
            op.add_column(table, sa.Column(name, type_, nullable=True))
    op.execute(
        "INSERT INTO rollup_dirty (field_id, ts, gen) "
        "SELECT DISTINCT field_id, ((ts + 2208992400000000) / 3600000000) * 3600000000 - 2208992400000000, 1 "
        "FROM readings WHERE true "
        "ON CONFLICT (field_id, ts) DO UPDATE SET gen = rollup_dirty.gen + 1"
    )


def downgrade():
    for table in ROLLUPS:
        for name, _ in SLOT_COLUMNS:
            op.drop_column(table, name)
    op.drop_index('ix_field_calibrations_field', table_name='field_calibrations')
    op.drop_table('field_calibrations')
    for name in FIELD_COLUMNS:
        op.drop_column('fields', name)
    op.drop_column('channels', 'derived')
