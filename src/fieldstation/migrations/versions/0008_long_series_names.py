"""Fields: names up to InfluxDB's 64 KiB series key (a line with hundreds of tags is valid line protocol).

Line protocol names each field ``<measurement>,<tags> <field key>``; InfluxDB
takes series keys up to 65,535 bytes, and the 255-character column refused a
line with a few dozen tags. SQLite does not enforce VARCHAR lengths and its
unique index takes keys of any length, so only PostgreSQL changes: the column
becomes TEXT, and the unique (channel, name) constraint, whose btree entries
cannot exceed about 2.7 kB, becomes a unique index on (channel, md5(name)).
Lookups by name go through the channel (a few hundred fields at most).

Revision ID: 0008_long_series_names
Revises: 0007_sign_in_failures
Create Date: 2026-12-05
"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0008_long_series_names'
down_revision = '0007_sign_in_failures'
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.drop_constraint('uq_fields_channel_id_name', 'fields', type_='unique')
    op.alter_column('fields', 'name', type_=sa.Text(), existing_type=sa.String(255), existing_nullable=False)
    op.execute('CREATE UNIQUE INDEX uq_fields_channel_id_name_md5 ON fields (channel_id, md5(name))')


def downgrade():
    bind = op.get_bind()
    if bind.dialect.name != 'postgresql':
        return
    longest = bind.execute(sa.text('SELECT max(length(name)) FROM fields')).scalar()
    if longest is not None and longest > 255:
        raise RuntimeError(
            f'fields has names of up to {longest} characters; the earlier schema holds 255: '
            'rename or delete those fields first'
        )
    op.execute('DROP INDEX uq_fields_channel_id_name_md5')
    op.alter_column('fields', 'name', type_=sa.String(255), existing_type=sa.Text(), existing_nullable=False)
    op.create_unique_constraint('uq_fields_channel_id_name', 'fields', ['channel_id', 'name'])
