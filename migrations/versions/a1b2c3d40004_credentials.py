"""Credentials: completions, issuer profiles, credentials, status lists (lms_bridge.credentials).

Revision ID: a1b2c3d40004
Revises: a1b2c3d40003
Create Date: 2026-11-21 09:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a1b2c3d40004'
down_revision = 'a1b2c3d40003'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'cred_issuer_profile',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('slug', sa.String(length=64), nullable=False),
        sa.Column('name', sa.String(length=300), nullable=False),
        sa.Column('url', sa.String(length=1000), nullable=True),
        sa.Column('email', sa.String(length=320), nullable=True),
        sa.Column('description', sa.Text(), nullable=True),
        sa.Column('source_project', sa.String(length=200), nullable=True),
        sa.Column('is_default', sa.Boolean(), nullable=False),
        sa.Column('kid', sa.String(length=100), nullable=False),
        sa.Column('private_pem', sa.Text(), nullable=False),
        sa.Column('previous_keys', sa.JSON(), nullable=False),
        sa.Column('connectors', sa.JSON(), nullable=False),
        sa.Column('settings', sa.JSON(), nullable=False),
        sa.Column('validity_days', sa.Integer(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cred_issuer_profile')),
        sa.UniqueConstraint('slug', name=op.f('uq_cred_issuer_profile_slug')),
        sa.UniqueConstraint('source_project', name=op.f('uq_cred_issuer_profile_source_project')),
    )
    op.create_table(
        'cred_course_issuing',
        sa.Column('course_id', sa.Integer(), nullable=False),
        sa.Column('issuer_profile_id', sa.Integer(), nullable=True),
        sa.Column('connectors', sa.JSON(), nullable=True),
        sa.Column('settings', sa.JSON(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['course_id'], ['pkg_course.id'],
                                name=op.f('fk_cred_course_issuing_course_id_pkg_course'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['issuer_profile_id'], ['cred_issuer_profile.id'],
                                name=op.f('fk_cred_course_issuing_issuer_profile_id_cred_issuer_profile'),
                                ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('course_id', name=op.f('pk_cred_course_issuing')),
    )
    op.create_table(
        'cred_completion',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uuid', sa.String(length=36), nullable=False),
        sa.Column('user_pk', sa.Integer(), nullable=True),
        sa.Column('version_id', sa.Integer(), nullable=True),
        sa.Column('course_id', sa.Integer(), nullable=True),
        sa.Column('attempt_id', sa.Integer(), nullable=True),
        sa.Column('registration_id', sa.Integer(), nullable=True),
        sa.Column('issuer_profile_id', sa.Integer(), nullable=False),
        sa.Column('learner_sub', sa.String(length=255), nullable=False),
        sa.Column('platform_issuer', sa.String(length=500), nullable=False),
        sa.Column('email_hash', sa.String(length=80), nullable=True),
        sa.Column('identity_salt', sa.String(length=64), nullable=False),
        sa.Column('learner_name', sa.String(length=255), nullable=True),
        sa.Column('course_identifier', sa.String(length=1000), nullable=False),
        sa.Column('source_project', sa.String(length=200), nullable=False),
        sa.Column('course_title', sa.String(length=500), nullable=False),
        sa.Column('course_version', sa.String(length=100), nullable=True),
        sa.Column('language', sa.String(length=35), nullable=True),
        sa.Column('achievement', sa.JSON(), nullable=False),
        sa.Column('learning_outcomes', sa.JSON(), nullable=False),
        sa.Column('esco_skills', sa.JSON(), nullable=False),
        sa.Column('esco_occupations', sa.JSON(), nullable=False),
        sa.Column('eqf_level', sa.SmallInteger(), nullable=True),
        sa.Column('ects', sa.Float(), nullable=True),
        sa.Column('workload_hours', sa.Float(), nullable=True),
        sa.Column('completed_at', sa.DateTime(), nullable=False),
        sa.Column('score_scaled', sa.Float(), nullable=True),
        sa.Column('pass_mark', sa.Float(), nullable=True),
        sa.Column('assessment_type', sa.String(length=200), nullable=True),
        sa.Column('supervision', sa.String(length=200), nullable=True),
        sa.Column('identity_verification', sa.String(length=200), nullable=True),
        sa.Column('evidence_url', sa.String(length=1000), nullable=True),
        sa.Column('connectors', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['attempt_id'], ['pl_attempt.id'],
                                name=op.f('fk_cred_completion_attempt_id_pl_attempt'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['course_id'], ['pkg_course.id'],
                                name=op.f('fk_cred_completion_course_id_pkg_course'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['issuer_profile_id'], ['cred_issuer_profile.id'],
                                name=op.f('fk_cred_completion_issuer_profile_id_cred_issuer_profile')),
        sa.ForeignKeyConstraint(['registration_id'], ['lti_registration.id'],
                                name=op.f('fk_cred_completion_registration_id_lti_registration'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['user_pk'], ['lti_user.id'],
                                name=op.f('fk_cred_completion_user_pk_lti_user'), ondelete='SET NULL'),
        sa.ForeignKeyConstraint(['version_id'], ['pkg_course_version.id'],
                                name=op.f('fk_cred_completion_version_id_pkg_course_version'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cred_completion')),
        sa.UniqueConstraint('uuid', name=op.f('uq_cred_completion_uuid')),
        sa.UniqueConstraint('user_pk', 'version_id', name=op.f('uq_cred_completion_user_pk_version_id')),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table('cred_completion', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cred_completion_course_id'), ['course_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cred_completion_registration_id'), ['registration_id'], unique=False)
    op.create_table(
        'cred_status_list',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('issuer_profile_id', sa.Integer(), nullable=False),
        sa.Column('purpose', sa.String(length=20), nullable=False),
        sa.Column('size', sa.Integer(), nullable=False),
        sa.Column('allocated', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['issuer_profile_id'], ['cred_issuer_profile.id'],
                                name=op.f('fk_cred_status_list_issuer_profile_id_cred_issuer_profile'),
                                ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cred_status_list')),
    )
    with op.batch_alter_table('cred_status_list', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cred_status_list_issuer_profile_id'), ['issuer_profile_id'], unique=False)
    op.create_table(
        'cred_credential',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('uuid', sa.String(length=36), nullable=False),
        sa.Column('completion_id', sa.Integer(), nullable=False),
        sa.Column('issuer_profile_id', sa.Integer(), nullable=False),
        sa.Column('kid', sa.String(length=100), nullable=False),
        sa.Column('verification_method', sa.String(length=1000), nullable=False),
        sa.Column('credential_json', sa.JSON(), nullable=False),
        sa.Column('credential_jwt', sa.Text(), nullable=False),
        sa.Column('status_list_id', sa.Integer(), nullable=False),
        sa.Column('status_index', sa.Integer(), nullable=False),
        sa.Column('issued_at', sa.DateTime(), nullable=False),
        sa.Column('valid_from', sa.DateTime(), nullable=False),
        sa.Column('valid_until', sa.DateTime(), nullable=True),
        sa.Column('revoked_at', sa.DateTime(), nullable=True),
        sa.Column('revocation_reason', sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(['completion_id'], ['cred_completion.id'],
                                name=op.f('fk_cred_credential_completion_id_cred_completion'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['issuer_profile_id'], ['cred_issuer_profile.id'],
                                name=op.f('fk_cred_credential_issuer_profile_id_cred_issuer_profile')),
        sa.ForeignKeyConstraint(['status_list_id'], ['cred_status_list.id'],
                                name=op.f('fk_cred_credential_status_list_id_cred_status_list')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cred_credential')),
        sa.UniqueConstraint('completion_id', name=op.f('uq_cred_credential_completion_id')),
        sa.UniqueConstraint('status_list_id', 'status_index', name=op.f('uq_cred_credential_status_list_id_status_index')),
        sa.UniqueConstraint('uuid', name=op.f('uq_cred_credential_uuid')),
    )
    op.create_table(
        'cred_delivery_receipt',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('completion_id', sa.Integer(), nullable=False),
        sa.Column('connector', sa.String(length=40), nullable=False),
        sa.Column('external_id', sa.String(length=500), nullable=True),
        sa.Column('note', sa.Text(), nullable=True),
        sa.Column('document', sa.JSON(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['completion_id'], ['cred_completion.id'],
                                name=op.f('fk_cred_delivery_receipt_completion_id_cred_completion'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_cred_delivery_receipt')),
        sa.UniqueConstraint('completion_id', 'connector', name=op.f('uq_cred_delivery_receipt_completion_id_connector')),
    )


def downgrade():
    op.drop_table('cred_delivery_receipt')
    op.drop_table('cred_credential')
    with op.batch_alter_table('cred_status_list', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cred_status_list_issuer_profile_id'))
    op.drop_table('cred_status_list')
    with op.batch_alter_table('cred_completion', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cred_completion_registration_id'))
        batch_op.drop_index(batch_op.f('ix_cred_completion_course_id'))
    op.drop_table('cred_completion')
    op.drop_table('cred_course_issuing')
    op.drop_table('cred_issuer_profile')
