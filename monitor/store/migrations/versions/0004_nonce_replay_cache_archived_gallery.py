"""nonce: replay cache of signed requests; protectedimage.archived_at/archived_by

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""
import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'nonce',
        sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('nonce', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column('seen_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint('key_id', 'nonce'),
    )
    op.create_index(op.f('ix_nonce_seen_at'), 'nonce', ['seen_at'], unique=False)
    with op.batch_alter_table('protectedimage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('archived_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('archived_by', sqlmodel.sql.sqltypes.AutoString(),
                                      nullable=True))
        batch_op.create_index(batch_op.f('ix_protectedimage_archived_at'), ['archived_at'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('protectedimage', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_protectedimage_archived_at'))
        batch_op.drop_column('archived_by')
        batch_op.drop_column('archived_at')
    op.drop_index(op.f('ix_nonce_seen_at'), table_name='nonce')
    op.drop_table('nonce')
