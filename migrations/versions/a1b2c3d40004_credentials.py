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
    pass


def downgrade():
    pass
