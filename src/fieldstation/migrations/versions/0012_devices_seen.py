"""Devices seen: arrivals per channel, device and hour, and expected intervals (issue 19).

Revision ID: 0012_devices_seen
Revises: 0011_channel_ids_never_reused
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0012_devices_seen'
down_revision = '0011_channel_ids_never_reused'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('device_activity',
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('device', sa.String(length=64), nullable=False),
    sa.Column('hour', sa.BigInteger(), nullable=False),
    sa.Column('writes', sa.BigInteger(), nullable=False),
    sa.Column('entries', sa.BigInteger(), nullable=False),
    sa.Column('first_us', sa.BigInteger(), nullable=False),
    sa.Column('last_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_device_activity_channel_id_channels'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('channel_id', 'device', 'hour', name=op.f('pk_device_activity'))
    )
    op.create_table('device_expectations',
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('device', sa.String(length=64), nullable=False),
    sa.Column('interval_s', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_device_expectations_channel_id_channels'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('channel_id', 'device', name=op.f('pk_device_expectations'))
    )


def downgrade():
    op.drop_table('device_expectations')
    op.drop_table('device_activity')
