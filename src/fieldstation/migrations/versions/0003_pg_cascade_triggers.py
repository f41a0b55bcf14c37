"""PostgreSQL: readings and entries without foreign keys; triggers cascade deletes instead (#3).

A foreign key checks (and share-locks) its parent row once per inserted row:
on a 5,000-point batch that was more than half of the database's time. The
write path now locks the channel row and its field rows once per write
(``store._statements``), and these triggers delete a field's readings and a
channel's entries as ``ON DELETE CASCADE`` did. SQLite keeps its foreign keys
(nothing changes there).

Revision ID: 0003_pg_cascade_triggers
Revises: 0002_rollups
Create Date: 2026-11-24
"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0003_pg_cascade_triggers'
down_revision = '0002_rollups'
branch_labels = None
depends_on = None

#: (child table, its foreign key, parent table, child column): what the triggers replace.
CASCADES = (
    ('readings', 'fk_readings_field_id_fields', 'fields', 'field_id'),
    ('entries', 'fk_entries_channel_id_channels', 'channels', 'channel_id'),
)


def upgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for child, fk, parent, column in CASCADES:
        op.drop_constraint(fk, child, type_='foreignkey')
        # Each statement of a PL/pgSQL function takes a fresh snapshot (READ COMMITTED), so the
        # DELETE also sees rows a write committed while the parent's deletion waited for its lock.
        op.execute(
            f"CREATE FUNCTION fieldstation_delete_{child}() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN DELETE FROM {child} WHERE {column} = OLD.id; RETURN OLD; END $$"
        )
        op.execute(
            f"CREATE TRIGGER {parent}_delete_{child} AFTER DELETE ON {parent} "
            f"FOR EACH ROW EXECUTE FUNCTION fieldstation_delete_{child}()"
        )


def downgrade():
    if op.get_bind().dialect.name != 'postgresql':
        return
    for child, fk, parent, column in CASCADES:
        op.execute(f"DROP TRIGGER {parent}_delete_{child} ON {parent}")
        op.execute(f"DROP FUNCTION fieldstation_delete_{child}()")
        # Writes lock their parents, so no row should lack one; if one did, the key could not be added.
        op.execute(f"DELETE FROM {child} c WHERE NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.id = c.{column})")
        op.create_foreign_key(fk, child, parent, [column], ['id'], ondelete='CASCADE')
