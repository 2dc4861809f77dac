"""Rule outputs of the whole plan: deadline, deadline status, price measures, units.

Revision ID: 0003
Revises: 0002_cases
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002_cases"
branch_labels = None
depends_on = None

_TEXT = ("deadline", "deadline_status", "price_measures", "units")


def upgrade() -> None:
    """Add the columns geo.rules writes (geo.schema.RULES_COLUMNS)."""
    for c in _TEXT:
        op.add_column("enterprises", sa.Column(c, sa.Text, nullable=False, server_default=""))
    op.add_column("enterprises", sa.Column("unit_count", sa.Integer))
    op.create_index("ix_enterprises_deadline_status", "enterprises", ["deadline_status"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_enterprises_deadline_status", "enterprises")
    for c in (*_TEXT, "unit_count"):
        op.drop_column("enterprises", c)
