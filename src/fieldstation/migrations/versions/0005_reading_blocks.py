"""Read blocks: each hour of a field's readings packed into one row, for long raw reads (#4).

A 24-hour read of one-minute data turned 1,440 driver rows into Python
objects, most of its time; 24 blocks decode in a fraction of it
(``fieldstation.blocks``). Blocks are derived data, rebuilt with the rollups
from the same marks. Every hour that has readings is marked here, so reads
take the readings until ``fieldstation rollups refresh`` (or the first chart
of a field) has built the blocks.

Revision ID: 0005_reading_blocks
Revises: 0004_sign_in_guard
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0005_reading_blocks'
down_revision = '0004_sign_in_guard'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('reading_blocks',
    sa.Column('field_id', sa.Integer(), nullable=False),
    sa.Column('ts', sa.BigInteger(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('t0', sa.BigInteger(), nullable=False),
    sa.Column('step', sa.BigInteger(), nullable=False),
    sa.Column('texts', sa.Integer(), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['field_id'], ['fields.id'], name=op.f('fk_reading_blocks_field_id_fields'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('field_id', 'ts', name=op.f('pk_reading_blocks'))
    )
    if op.get_bind().dialect.name == 'postgresql':
        # Packed floats barely compress; out of line and uncompressed, a read skips pglz.
        op.execute("ALTER TABLE reading_blocks ALTER COLUMN data SET STORAGE EXTERNAL")
    # A clean hour without a block must hold no readings: mark every hour that has some.
    op.execute(
        "INSERT INTO rollup_dirty (field_id, ts, gen) "
        "SELECT DISTINCT field_id, ((ts + 2208992400000000) / 3600000000) * 3600000000 - 2208992400000000, 1 "
        "FROM readings WHERE true "
        "ON CONFLICT (field_id, ts) DO UPDATE SET gen = rollup_dirty.gen + 1"
    )


def downgrade():
    op.drop_table('reading_blocks')
