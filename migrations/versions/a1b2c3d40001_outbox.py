"""Durable delivery: the outbox (lms_bridge.outbox), and relay bookkeeping on progress events.

Revision ID: a1b2c3d40001
Revises: db5794e745a5
Create Date: 2026-11-21 09:00:00

"""
from alembic import op
import sqlalchemy as sa


revision = 'a1b2c3d40001'
down_revision = 'db5794e745a5'
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        'outbox_message',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=60), nullable=False),
        sa.Column('dedupe_key', sa.String(length=500), nullable=False),
        sa.Column('idempotency_key', sa.String(length=200), nullable=False),
        sa.Column('target', sa.String(length=1000), nullable=False),
        sa.Column('payload', sa.JSON(), nullable=False),
        sa.Column('state', sa.String(length=20), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(), nullable=False),
        sa.Column('claimed_by', sa.String(length=100), nullable=True),
        sa.Column('claimed_until', sa.DateTime(), nullable=True),
        sa.Column('last_status', sa.String(length=100), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(), nullable=False),
        sa.Column('updated_at', sa.DateTime(), nullable=False),
        sa.Column('delivered_at', sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_outbox_message')),
        sqlite_autoincrement=True,
    )
    op.create_index('ix_outbox_message_due', 'outbox_message', ['state', 'next_attempt_at'], unique=False)
    op.create_index('ix_outbox_message_key', 'outbox_message', ['kind', 'dedupe_key'], unique=False)
    with op.batch_alter_table('pl_progress_event') as batch:
        batch.add_column(sa.Column('relay_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch.add_column(sa.Column('relay_error', sa.Text(), nullable=True))


def downgrade():
    with op.batch_alter_table('pl_progress_event') as batch:
        batch.drop_column('relay_error')
        batch.drop_column('relay_attempts')
    op.drop_index('ix_outbox_message_key', table_name='outbox_message')
    op.drop_index('ix_outbox_message_due', table_name='outbox_message')
    op.drop_table('outbox_message')
