"""Channel metadata: ThingSpeak's metadata text and tags, and a small key-value store per channel.

A table of its own (one row per channel that has any), so the channel row, which
every write locks, does not grow.

Revision ID: 0010_channel_meta
Revises: 0009_accounts
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0010_channel_meta'
down_revision = '0009_accounts'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('channel_meta',
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('metadata', sa.Text(), server_default='', nullable=False),
    sa.Column('tags', sa.Text(), server_default='[]', nullable=False),
    sa.Column('pairs', sa.Text(), server_default='{}', nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_channel_meta_channel_id_channels'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('channel_id', name=op.f('pk_channel_meta'))
    )


def downgrade():
    op.drop_table('channel_meta')
