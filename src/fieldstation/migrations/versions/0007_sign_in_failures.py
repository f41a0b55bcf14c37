"""The sign-in throttle counts by name and by address, known names and unknown alike.

Migration 0004 counted wrong passwords on the account, so after five of them a
name that exists answered 429 while one that does not answered 401, which told
anyone which names exist; and anyone anywhere could hold an account's owner
out. Counts now live in ``sign_in_failures``, keyed by a hash of the name
together with the client's address, and of the address alone (a per-address
limit across names); the account's own columns go.

Revision ID: 0007_sign_in_failures
Revises: 0006_compact_rollup_slots
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0007_sign_in_failures'
down_revision = '0006_compact_rollup_slots'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'sign_in_failures',
        sa.Column('subject', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), nullable=False),
        sa.Column('last_failure_us', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('subject', name=op.f('pk_sign_in_failures')),
    )
    # In place, not in batch mode: a batch copy of ``users`` would cascade-delete every channel
    # on SQLite (see 0004's downgrade).
    op.drop_column('users', 'last_failed_sign_in_us')
    op.drop_column('users', 'failed_sign_ins')


def downgrade():
    op.add_column('users', sa.Column('failed_sign_ins', sa.Integer(), nullable=False, server_default='0'))
    op.add_column('users', sa.Column('last_failed_sign_in_us', sa.BigInteger(), nullable=True))
    op.drop_table('sign_in_failures')
