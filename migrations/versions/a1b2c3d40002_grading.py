"""Grade passback: line items and score delivery (lms_bridge.grading.ags).

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
    pass


def downgrade():
    pass
