"""SSCD descriptor per protected image; descriptor similarities and overlap both ways per match

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('protectedimage', schema=None) as batch_op:
        batch_op.add_column(sa.Column('descriptor_vector', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('descriptor_model', sa.String(), nullable=True))
    with op.batch_alter_table('match', schema=None) as batch_op:
        batch_op.add_column(sa.Column('similarity', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('normalised', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('query_overlap', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('target_overlap', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('target_region_json', sa.String(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('match', schema=None) as batch_op:
        for name in ('target_region_json', 'target_overlap', 'query_overlap', 'normalised',
                     'similarity'):
            batch_op.drop_column(name)
    with op.batch_alter_table('protectedimage', schema=None) as batch_op:
        batch_op.drop_column('descriptor_model')
        batch_op.drop_column('descriptor_vector')
