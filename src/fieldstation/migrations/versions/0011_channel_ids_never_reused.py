"""SQLite: channel ids are never reused (AUTOINCREMENT), as PostgreSQL's sequence already does.

Without it SQLite gives a new channel the id of the newest deleted one, so old
embed and feed URLs (``/channels/<id>/charts/1``) would show another channel's data.

SQLite cannot add AUTOINCREMENT to a table: ``channels`` is copied into a new one
as sqlite.org's "Making Other Kinds Of Table Schema Changes" does it. With foreign
keys on, dropping the old table would delete every field, key and reading by
cascade, and renaming would point the other tables at the old one; foreign keys
are turned off for the copy, which SQLite only allows outside a transaction, so
the migrations before this one are committed first. Ids deleted before this
upgrade are not known any more and may be given out once; none after it.

Revision ID: 0011_channel_ids_never_reused
Revises: 0010_channel_meta
Create Date: 2026-12-05
"""
import re

from alembic import op


# revision identifiers, used by Alembic.
revision = '0011_channel_ids_never_reused'
down_revision = '0010_channel_meta'
branch_labels = None
depends_on = None


def upgrade():
    bind = op.get_bind()
    if bind.dialect.name != 'sqlite':
        return  # PostgreSQL's sequences never hand an id out twice
    create = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'channels'"
    ).scalar()
    if 'AUTOINCREMENT' in create.upper():
        return
    indexes = [row[0] for row in bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'channels' AND sql IS NOT NULL"
    )]
    new = re.sub(r'^CREATE TABLE "?channels"? \(', 'CREATE TABLE channels_new (', create)
    new = re.sub(r'\bid INTEGER NOT NULL,', 'id INTEGER NOT NULL CONSTRAINT pk_channels PRIMARY KEY AUTOINCREMENT,', new)
    new = re.sub(r'\s*CONSTRAINT pk_channels PRIMARY KEY \(id\),', '', new)
    assert 'AUTOINCREMENT' in new and 'PRIMARY KEY (id)' not in new, new
    raw = bind.connection.dbapi_connection
    raw.commit()  # what earlier migrations of this run did; PRAGMA foreign_keys needs no transaction
    raw.execute('PRAGMA foreign_keys = OFF')
    try:
        raw.execute('BEGIN')
        try:
            raw.execute(new)
            raw.execute('INSERT INTO channels_new SELECT * FROM channels')
            raw.execute('DROP TABLE channels')
            raw.execute('ALTER TABLE channels_new RENAME TO channels')
            for index in indexes:
                raw.execute(index)
            broken = raw.execute('PRAGMA foreign_key_check').fetchall()
            if broken:
                raise RuntimeError(f'foreign keys broken by the copy: {broken[:5]}')
        except BaseException:
            raw.rollback()
            raise
        raw.commit()
    finally:
        raw.execute('PRAGMA foreign_keys = ON')


def downgrade():
    pass  # AUTOINCREMENT stays: it changes no stored value, and older code is glad of it
