"""Deep linking and rosters (lms_bridge.grading.deep_linking, nrps).

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
    pass


def downgrade():
    pass
