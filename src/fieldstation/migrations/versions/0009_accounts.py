"""Accounts: a password that must be changed at the next sign-in, and disabled accounts.

The first admin's generated password, and any password an admin sets for someone
else, is known to more than its owner: ``must_change_password`` sends its owner
to "change my password" before any other page. An admin can disable an account
(``disabled_at``): it cannot sign in and its user key is refused, while its
channels keep taking readings.

Revision ID: 0009_accounts
Revises: 0008_long_series_names
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op

import fieldstation.models.base


# revision identifiers, used by Alembic.
revision = '0009_accounts'
down_revision = '0008_long_series_names'
branch_labels = None
depends_on = None


def upgrade():
    # Added in place on both engines: batch mode's copy of ``users`` would, on SQLite, drop the
    # old table and with it every channel by cascade.
    op.add_column('users', sa.Column('must_change_password', sa.Boolean(), nullable=False,
                                     server_default=sa.false()))
    op.add_column('users', sa.Column('disabled_at', fieldstation.models.base.UTCDateTime(timezone=True),
                                     nullable=True))


def downgrade():
    # Dropped in place, not through batch mode's copy (see 0004: the copy's drop cascades).
    for column in ('disabled_at', 'must_change_password'):
        op.drop_column('users', column)
