"""Durable delivery: the outbox (lms_bridge.outbox).

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
    pass


def downgrade():
    pass
