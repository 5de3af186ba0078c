"""Grade passback: line items and score delivery (lms_bridge.grading.ags).

* ``grading_line_item``: line items the tool created itself, one per resource link at most
  (lms_bridge/grading/models.py);
* ``dev_score.idempotency_key``: the development platform answers a retried score POST once
  (lms_bridge/devplatform/models.py).

Revision ID: a1b2c3d40002
Revises: a1b2c3d40001
Create Date: 2026-11-21 09:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a1b2c3d40002'
down_revision = 'a1b2c3d40001'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'grading_line_item',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('registration_id', sa.Integer(), nullable=False),
        sa.Column('resource_link_pk', sa.Integer(), nullable=False),
        sa.Column('url', sa.String(length=1000), nullable=False),
        sa.Column('container_url', sa.String(length=1000), nullable=False),
        sa.Column('resource_id', sa.String(length=255), nullable=False),
        sa.Column('label', sa.String(length=500), nullable=False),
        sa.Column('score_maximum', sa.Float(), nullable=False),
        sa.Column('tag', sa.String(length=255), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['registration_id'], ['lti_registration.id'],
                                name=op.f('fk_grading_line_item_registration_id_lti_registration'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['resource_link_pk'], ['lti_resource_link.id'],
                                name=op.f('fk_grading_line_item_resource_link_pk_lti_resource_link'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_grading_line_item')),
        sa.UniqueConstraint('resource_link_pk', name=op.f('uq_grading_line_item_resource_link_pk')),
    )
    with op.batch_alter_table('grading_line_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_grading_line_item_registration_id'), ['registration_id'], unique=False)

    with op.batch_alter_table('dev_score', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(batch_op.f('uq_dev_score_line_item_id_idempotency_key'),
                                          ['line_item_id', 'idempotency_key'])


def downgrade():
    with op.batch_alter_table('dev_score', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_dev_score_line_item_id_idempotency_key'), type_='unique')
        batch_op.drop_column('idempotency_key')
    with op.batch_alter_table('grading_line_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_grading_line_item_registration_id'))
    op.drop_table('grading_line_item')
