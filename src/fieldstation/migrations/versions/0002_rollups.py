"""Rollups: per-minute, per-hour and per-day aggregates of each field, and their dirty marks (#4).

Revision ID: 0002_rollups
Revises: 0001
Create Date: 2026-11-24
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0002_rollups'
down_revision = '0001'
branch_labels = None
depends_on = None

ROLLUPS = ('rollup_minute', 'rollup_hour', 'rollup_day')


def upgrade():
    for name in ROLLUPS:
        op.create_table(name,
        sa.Column('field_id', sa.Integer(), nullable=False),
        sa.Column('ts', sa.BigInteger(), nullable=False),
        sa.Column('n', sa.Integer(), nullable=False),
        sa.Column('sum', sa.Float(), nullable=False),
        sa.Column('min', sa.Float(), nullable=False),
        sa.Column('max', sa.Float(), nullable=False),
        sa.Column('first', sa.Float(), nullable=False),
        sa.Column('last', sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(['field_id'], ['fields.id'], name=op.f(f'fk_{name}_field_id_fields'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('field_id', 'ts', name=op.f(f'pk_{name}')),
        sqlite_with_rowid=False
        )
    op.create_table('rollup_dirty',
    sa.Column('field_id', sa.Integer(), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('gen', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['field_id'], ['fields.id'], name=op.f('fk_rollup_dirty_field_id_fields'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('field_id', 'ts', name=op.f('pk_rollup_dirty')),
    sqlite_with_rowid=False
    )
    # Rollups of data written before this migration are built by the first query or by
    # `fieldstation rollups refresh`: mark every hour that has readings.
    op.execute(
        "INSERT INTO rollup_dirty (field_id, ts, gen) "
        "SELECT DISTINCT field_id, ((ts + 2208992400000000) / 3600000000) * 3600000000 - 2208992400000000, 1 "
        "FROM readings"
    )


def downgrade():
    op.drop_table('rollup_dirty')
    for name in reversed(ROLLUPS):
        op.drop_table(name)
