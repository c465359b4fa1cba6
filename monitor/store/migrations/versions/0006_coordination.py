"""Coordination between processes: named leases (one active scheduler) and counters
(the gallery version workers follow)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'rolelease',
        sa.Column('name', sa.String(), primary_key=True),
        sa.Column('holder', sa.String(), nullable=False),
        sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.Column('acquired_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    )
    op.create_table(
        'counter',
        sa.Column('name', sa.String(), primary_key=True),
        sa.Column('value', sa.BigInteger(), nullable=False),
    )
    op.execute("INSERT INTO counter (name, value) VALUES ('gallery', 0)")


def downgrade() -> None:
    op.drop_table('counter')
    op.drop_table('rolelease')
