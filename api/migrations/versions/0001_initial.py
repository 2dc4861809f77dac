"""Initial schema: enterprises (points, GiST index) and loads (version history).

Revision ID: 0001
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from geoalchemy2 import Geometry

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

_TEXT = (
    "uscc", "name", "industry_id", "industry", "address", "crs_in", "geocode_precision",
    "geocode_unit", "city", "district", "district_code", "basin_id", "region_id", "park_id",
    "park_claimed", "verdict", "standards", "rule_ids", "review_reasons", "data_issues",
    "reasons",
)
_INDEXED = ("verdict", "industry_id", "basin_id", "region_id", "district_code", "city")


def upgrade() -> None:
    """Create postgis (if allowed), loads and enterprises."""
    op.execute("CREATE EXTENSION IF NOT EXISTS postgis")
    op.create_table(
        "loads",
        sa.Column("load_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("loaded_at", sa.DateTime(timezone=True), nullable=False,
                  server_default=sa.func.now()),
        sa.Column("loaded_by", sa.Text, nullable=False),
        sa.Column("source_name", sa.Text, nullable=False),
        sa.Column("source_sha256", sa.Text, nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
    )
    cols = [
        sa.Column("fid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("row", sa.Integer),
        sa.Column("lon", sa.Float(precision=53)),
        sa.Column("lat", sa.Float(precision=53)),
        sa.Column("needs_review", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("load_id", sa.Integer),
        sa.Column("geometry", Geometry("POINT", srid=4326, spatial_index=False),
                  nullable=False),
    ]
    cols[4:4] = [sa.Column(c, sa.Text, nullable=False, server_default="") for c in _TEXT]
    op.create_table("enterprises", *cols)
    op.create_index("ix_enterprises_geometry", "enterprises", ["geometry"],
                    postgresql_using="gist")
    for c in _INDEXED:
        op.create_index(f"ix_enterprises_{c}", "enterprises", [c])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("enterprises")
    op.drop_table("loads")
