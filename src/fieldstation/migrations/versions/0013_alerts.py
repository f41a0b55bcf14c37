"""Alert rules, their transitions, the notification outbox and the worker's schedule (issue 19).

Revision ID: 0013_alerts
Revises: 0012_devices_seen
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0013_alerts'
down_revision = '0012_devices_seen'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table('alert_rules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('field_id', sa.Integer(), nullable=True),
    sa.Column('op', sa.String(length=8), nullable=True),
    sa.Column('threshold', sa.Float(), nullable=True),
    sa.Column('for_s', sa.Integer(), nullable=False),
    sa.Column('hysteresis', sa.Float(), nullable=False),
    sa.Column('silence_s', sa.Integer(), nullable=True),
    sa.Column('device', sa.String(length=64), nullable=True),
    sa.Column('webhook_url', sa.String(length=2000), nullable=True),
    sa.Column('webhook_secret', sa.String(length=64), nullable=False),
    sa.Column('email_to', sa.String(length=320), nullable=True),
    sa.Column('mqtt_topic', sa.String(length=255), nullable=True),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('state_since_us', sa.BigInteger(), nullable=False),
    sa.Column('checked_write_us', sa.BigInteger(), nullable=True),
    sa.Column('created_us', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_alert_rules_channel_id_channels'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['field_id'], ['fields.id'], name=op.f('fk_alert_rules_field_id_fields'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_rules'))
    )
    op.create_index(op.f('ix_alert_rules_channel_id'), 'alert_rules', ['channel_id'], unique=False)
    op.create_table('alert_transitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('rule_id', sa.Integer(), nullable=False),
    sa.Column('at_us', sa.BigInteger(), nullable=False),
    sa.Column('state', sa.String(length=8), nullable=False),
    sa.Column('value', sa.Float(), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['rule_id'], ['alert_rules.id'], name=op.f('fk_alert_transitions_rule_id_alert_rules'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_transitions'))
    )
    op.create_index('ix_alert_transitions_rule_at', 'alert_transitions', ['rule_id', 'at_us'], unique=False)
    op.create_table('alert_deliveries',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('transition_id', sa.Integer(), nullable=False),
    sa.Column('via', sa.String(length=8), nullable=False),
    sa.Column('target', sa.String(length=2000), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_us', sa.BigInteger(), nullable=False),
    sa.Column('claimed_until_us', sa.BigInteger(), nullable=True),
    sa.Column('delivered_us', sa.BigInteger(), nullable=True),
    sa.Column('failed', sa.Boolean(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['transition_id'], ['alert_transitions.id'], name=op.f('fk_alert_deliveries_transition_id_alert_transitions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alert_deliveries'))
    )
    op.create_index('ix_alert_deliveries_due', 'alert_deliveries', ['delivered_us', 'next_attempt_us'], unique=False)
    op.create_index(op.f('ix_alert_deliveries_transition_id'), 'alert_deliveries', ['transition_id'], unique=False)
    op.create_table('worker_jobs',
    sa.Column('name', sa.String(length=32), nullable=False),
    sa.Column('next_run_us', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('name', name=op.f('pk_worker_jobs'))
    )


def downgrade():
    op.drop_table('worker_jobs')
    op.drop_index(op.f('ix_alert_deliveries_transition_id'), table_name='alert_deliveries')
    op.drop_index('ix_alert_deliveries_due', table_name='alert_deliveries')
    op.drop_table('alert_deliveries')
    op.drop_index('ix_alert_transitions_rule_at', table_name='alert_transitions')
    op.drop_table('alert_transitions')
    op.drop_index(op.f('ix_alert_rules_channel_id'), table_name='alert_rules')
    op.drop_table('alert_rules')
