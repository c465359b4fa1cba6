"""Row ids and the columns that refer to them as BIGINT on PostgreSQL

Migrations 0001-0005 created ids as INTEGER (32 bits; SERIAL sequences stop at
2,147,483,647). The models declare them 64-bit (``models.ROW_ID``), as SQLite's rowids
already are; this widens the PostgreSQL columns and their sequences to match. SQLite is
left as it is (its ``INTEGER PRIMARY KEY`` is the 64-bit rowid).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

ROW_ID_COLUMNS = {
    "collection": ("id",),
    "scan": ("id",),
    "protectedimage": ("id", "collection_id"),
    "candidate": ("id", "scan_id"),
    "job": ("candidate_id", "scan_id"),
    "match": ("id", "candidate_id", "protected_id"),
    "violation": ("id", "match_id", "candidate_id", "protected_id"),
    "alert": ("id", "violation_id"),
    "violationevent": ("id", "violation_id"),
}
"""Table → its id and foreign-key columns (``sa_type=ROW_ID`` in ``models.py``)."""


def _widen(to: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    old, new = (sa.Integer(), sa.BigInteger()) if to == "bigint" else (sa.BigInteger(), sa.Integer())
    for table, columns in ROW_ID_COLUMNS.items():
        for column in columns:
            op.alter_column(table, column, type_=new, existing_type=old)
        if "id" in columns:
            seq = bind.execute(sa.text("select pg_get_serial_sequence(:t, 'id')"),
                               {"t": table}).scalar()
            if seq:
                op.execute(f"ALTER SEQUENCE {seq} AS {to}")


def upgrade() -> None:
    _widen("bigint")


def downgrade() -> None:
    _widen("integer")
