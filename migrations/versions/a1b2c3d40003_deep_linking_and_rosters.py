"""Deep linking and rosters (lms_bridge.grading.deep_linking, nrps).

* ``pl_link_binding``: the course or module an instructor chose for a resource link created
  without Deep Linking (lms_bridge.player.binding.LinkBinding);
* ``gr_roster`` and ``gr_roster_member``: the last Names and Role Provisioning roster of each
  context (lms_bridge.grading.nrps).

Revision ID: a1b2c3d40003
Revises: a1b2c3d40002
Create Date: 2026-11-21 09:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a1b2c3d40003'
down_revision = 'a1b2c3d40002'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'pl_link_binding',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('resource_link_pk', sa.Integer(), nullable=False),
        sa.Column('course_id', sa.Integer(), nullable=False),
        sa.Column('module_identifier', sa.String(length=1000), nullable=True),
        sa.Column('chosen_by', sa.Integer(), nullable=True),
        sa.Column('chosen_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['resource_link_pk'], ['lti_resource_link.id'],
                                name=op.f('fk_pl_link_binding_resource_link_pk_lti_resource_link'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['course_id'], ['pkg_course.id'],
                                name=op.f('fk_pl_link_binding_course_id_pkg_course'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['chosen_by'], ['lti_user.id'],
                                name=op.f('fk_pl_link_binding_chosen_by_lti_user'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_pl_link_binding')),
        sa.UniqueConstraint('resource_link_pk', name=op.f('uq_pl_link_binding_resource_link_pk')),
    )
    op.create_index(op.f('ix_pl_link_binding_course_id'), 'pl_link_binding', ['course_id'], unique=False)

    op.create_table(
        'gr_roster',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('context_pk', sa.Integer(), nullable=False),
        sa.Column('memberships_url', sa.String(length=1000), nullable=False),
        sa.Column('synced_at', sa.DateTime(), nullable=True),
        sa.Column('member_count', sa.Integer(), nullable=False),
        sa.Column('page_count', sa.Integer(), nullable=False),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('error_at', sa.DateTime(), nullable=True),
        sa.ForeignKeyConstraint(['context_pk'], ['lti_context.id'],
                                name=op.f('fk_gr_roster_context_pk_lti_context'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_gr_roster')),
        sa.UniqueConstraint('context_pk', name=op.f('uq_gr_roster_context_pk')),
    )

    op.create_table(
        'gr_roster_member',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('context_pk', sa.Integer(), nullable=False),
        sa.Column('user_pk', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=20), nullable=False),
        sa.Column('roles', sa.JSON(), nullable=False),
        sa.Column('synced_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['context_pk'], ['lti_context.id'],
                                name=op.f('fk_gr_roster_member_context_pk_lti_context'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['user_pk'], ['lti_user.id'],
                                name=op.f('fk_gr_roster_member_user_pk_lti_user'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_gr_roster_member')),
        sa.UniqueConstraint('context_pk', 'user_pk', name=op.f('uq_gr_roster_member_context_pk_user_pk')),
    )
    op.create_index(op.f('ix_gr_roster_member_user_pk'), 'gr_roster_member', ['user_pk'], unique=False)


def downgrade():
    op.drop_index(op.f('ix_gr_roster_member_user_pk'), table_name='gr_roster_member')
    op.drop_table('gr_roster_member')
    op.drop_table('gr_roster')
    op.drop_index(op.f('ix_pl_link_binding_course_id'), table_name='pl_link_binding')
    op.drop_table('pl_link_binding')
