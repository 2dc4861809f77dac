"""Cases and their append-only history, monitoring samples, calendar submissions.

Mirrors ``api.store.casestore.metadata`` (a test compares the two). Row triggers reject
UPDATE and DELETE, a statement trigger TRUNCATE, on every table: history is appended only.

Revision ID: 0002_cases
Revises: 0001
Create Date: 2024-07-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_cases"
down_revision = "0001"
branch_labels = None
depends_on = None

_TABLES = ("cases", "case_events", "case_syncs", "monitoring_batches", "monitoring_samples",
           "calendar_submissions")
_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    """Create the tables, indexes and append-only triggers."""
    op.create_table(
        "cases",
        sa.Column("case_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("opened_on", sa.Date, nullable=False),
        sa.Column("opened_at", _TS, nullable=False),
        sa.Column("opened_by", sa.Text, nullable=False),
        sa.Column("load_id", sa.Integer),
    )
    op.create_table(
        "case_events",
        sa.Column("event_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("case_id", sa.Integer, sa.ForeignKey("cases.case_id"), nullable=False),
        sa.Column("field", sa.Text, nullable=False),
        sa.Column("before", sa.Text, nullable=False),
        sa.Column("after", sa.Text, nullable=False),
        sa.Column("effective_date", sa.Date, nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.Column("source", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.create_index("ix_case_events_state", "case_events",
                    ["case_id", "field", "effective_date", "event_id"])
    op.create_index("ix_case_events_source", "case_events", ["source"])
    op.create_table(
        "case_syncs",
        sa.Column("load_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("synced_at", _TS, nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        *[sa.Column(c, sa.Integer, nullable=False)
          for c in ("opened", "continued", "changed", "verdict_changed", "absent")],
    )
    op.create_table(
        "monitoring_batches",
        sa.Column("batch_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("loaded_at", _TS, nullable=False),
        sa.Column("loaded_by", sa.Text, nullable=False),
        sa.Column("source_name", sa.Text, nullable=False),
        sa.Column("source_sha256", sa.Text, nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
    )
    op.create_table(
        "monitoring_samples",
        sa.Column("sample_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("batch_id", sa.Integer, sa.ForeignKey("monitoring_batches.batch_id"),
                  nullable=False),
        sa.Column("row", sa.Integer, nullable=False),
        *[sa.Column(c, sa.Text, nullable=False)
          for c in ("uscc", "name", "outlet", "pollutant")],
        sa.Column("sampled_at", _TS, nullable=False),
        sa.Column("value", sa.Float(precision=53)),
        sa.Column("unit", sa.Text, nullable=False),
        sa.Column("below_detection", sa.Boolean, nullable=False),
        sa.Column("detection_limit", sa.Float(precision=53)),
        sa.Column("flow", sa.Float(precision=53)),
        sa.Column("discharge", sa.Text, nullable=False),
    )
    op.create_index("ix_monitoring_samples_time", "monitoring_samples", ["sampled_at"])
    op.create_table(
        "calendar_submissions",
        sa.Column("submission_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("item_id", sa.Text, nullable=False),
        sa.Column("department", sa.Text, nullable=False),
        sa.Column("submitted_on", sa.Date, nullable=False),
        sa.Column("recorded_at", _TS, nullable=False),
        sa.Column("recorded_by", sa.Text, nullable=False),
        sa.Column("note", sa.Text, nullable=False),
    )
    op.execute(
        "CREATE OR REPLACE FUNCTION basinwatch_append_only() RETURNS trigger AS $$ "
        "BEGIN RAISE EXCEPTION '% is append-only: % is not allowed', TG_TABLE_NAME, TG_OP; "
        "END $$ LANGUAGE plpgsql"
    )
    for t in _TABLES:
        op.execute(f"CREATE TRIGGER {t}_append_only BEFORE UPDATE OR DELETE ON {t} "
                   "FOR EACH ROW EXECUTE FUNCTION basinwatch_append_only()")
        op.execute(f"CREATE TRIGGER {t}_no_truncate BEFORE TRUNCATE ON {t} "
                   "FOR EACH STATEMENT EXECUTE FUNCTION basinwatch_append_only()")


def downgrade() -> None:
    """Drop the tables and the trigger function."""
    for t in reversed(_TABLES):
        op.drop_table(t)
    op.execute("DROP FUNCTION IF EXISTS basinwatch_append_only()")
