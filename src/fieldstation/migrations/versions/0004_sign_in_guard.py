"""Users: the sign-in throttle's count of wrong passwords, and a session epoch for signing out.

After five wrong passwords in a row an account takes no password for a while
(``manage.authenticate``), so that passwords cannot be guessed at the speed
of the server. Signing out moves the account's session epoch on, which every
session cookie of the account is bound to (``dashboard.session``), so a copied
cookie stops working too. Both live in the database: every worker and every
host sees the same state.

Revision ID: 0004_sign_in_guard
Revises: 0003_pg_cascade_triggers
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0004_sign_in_guard'
down_revision = '0003_pg_cascade_triggers'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('failed_sign_ins', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('last_failed_sign_in_us', sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column('session_epoch', sa.Integer(), nullable=False, server_default='0'))


def downgrade():
    # SQLite drops these columns itself (3.35+). Alembic's batch mode would copy the table and
    # drop the old one instead, and with foreign keys on, dropping ``users`` deletes every
    # channel, key and reading by cascade.
    for column in ('session_epoch', 'last_failed_sign_in_us', 'failed_sign_ins'):
        op.drop_column('users', column)
