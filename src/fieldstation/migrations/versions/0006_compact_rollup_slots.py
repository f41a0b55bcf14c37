"""Rollups: a slot of one reading stores only its sum (min, max, first and last become NULL).

A sensor that writes once a minute or slower makes one minute slot per reading,
and full rows made ``rollup_minute`` more than twice the size of ``readings``
(97.5 against 42.0 MB for 1.5 M one-minute readings on SQLite). Readers take a
NULL min, max, first or last as the slot's sum, which for one reading is the
reading itself: slots are only made so when the two are equal bit for bit.

Revision ID: 0006_compact_rollup_slots
Revises: 0005_reading_blocks
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0006_compact_rollup_slots'
down_revision = '0005_reading_blocks'
branch_labels = None
depends_on = None

ROLLUPS = ('rollup_minute', 'rollup_hour', 'rollup_day')
COLUMNS = ('min', 'max', 'first', 'last')


def _nullable(table, nullable):
    # SQLite rebuilds the table (nothing refers to rollups, so no cascade can fire); keep it clustered.
    with op.batch_alter_table(table, table_kwargs={'sqlite_with_rowid': False}) as batch:
        for column in COLUMNS:
            batch.alter_column(column, existing_type=sa.Float(), nullable=nullable)


def upgrade():
    for table in ROLLUPS:
        _nullable(table, True)
        op.execute(
            f"UPDATE {table} SET min = NULL, max = NULL, first = NULL, last = NULL "
            "WHERE n = 1 AND min = sum AND max = sum AND first = sum AND last = sum"
        )


def downgrade():
    for table in ROLLUPS:
        op.execute(
            f"UPDATE {table} SET min = coalesce(min, sum), max = coalesce(max, sum), "
            "first = coalesce(first, sum), last = coalesce(last, sum) WHERE min IS NULL"
        )
        _nullable(table, False)
