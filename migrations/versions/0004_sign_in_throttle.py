"""Users: consecutive failed sign-ins and the time of the last one, for the sign-in throttle.

After five wrong passwords in a row an account takes no password for a while
(``manage.authenticate``), so that passwords cannot be guessed at the speed
of the server. The state lives in the database: every worker and every host
sees the same count.

Revision ID: 0004_sign_in_throttle
Revises: 0003_pg_cascade_triggers
Create Date: 2026-11-25
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0004_sign_in_throttle'
down_revision = '0003_pg_cascade_triggers'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('users') as batch:
        batch.add_column(sa.Column('failed_sign_ins', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('last_failed_sign_in_us', sa.BigInteger(), nullable=True))


def downgrade():
    with op.batch_alter_table('users') as batch:
        batch.drop_column('last_failed_sign_in_us')
        batch.drop_column('failed_sign_ins')
