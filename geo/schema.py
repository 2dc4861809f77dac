"""Column names of every pipeline stage: the single source of truth.

Machine-readable outputs use these English snake_case names; human-facing outputs map
them to Chinese labels from ``layers/data/labels.toml``.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    "INGEST_COLUMNS",
    "REJECTED_COLUMNS",
    "GEOCODE_COLUMNS",
    "CLASSIFY_COLUMNS",
    "RULES_COLUMNS",
    "ENFORCEMENT_COLUMNS",
    "PRECISIONS",
    "ISSUE_SEP",
    "LIST_SEP",
    "REASON_SEP",
]

#: Separator of issue codes, standards and rule ids inside one cell.
ISSUE_SEP: Final = ";"
LIST_SEP: Final = ";"
#: Separator of Chinese reason sentences inside one cell.
REASON_SEP: Final = "；"

INGEST_COLUMNS: Final = (
    "row",
    "uscc",
    "name",
    "industry_id",
    "industry",
    "address",
    "lon_in",
    "lat_in",
    "crs_in",
    "park_claimed",
    "data_issues",
)

REJECTED_COLUMNS: Final = ("row", "uscc", "name", "field", "reason", "message")

#: Geocode precision levels, finest first.
PRECISIONS: Final = ("coordinates", "town", "district", "city")

GEOCODE_COLUMNS: Final = (
    "lon", "lat", "geocode_precision", "geocode_unit", "geocode_unit_code"
)

CLASSIFY_COLUMNS: Final = (
    "city",
    "district",
    "district_code",
    "basin_id",
    "region_id",
    "park_id",
    "needs_review",
    "review_reasons",
)

RULES_COLUMNS: Final = ("verdict", "standards", "rule_ids", "reasons")

#: Columns of enforcement_list.csv / .geojson, in order.
ENFORCEMENT_COLUMNS: Final = (
    "row",
    "uscc",
    "name",
    "industry_id",
    "industry",
    "address",
    "lon",
    "lat",
    "crs_in",
    "geocode_precision",
    "geocode_unit",
    "city",
    "district",
    "district_code",
    "basin_id",
    "region_id",
    "park_id",
    "park_claimed",
    "verdict",
    "standards",
    "rule_ids",
    "needs_review",
    "review_reasons",
    "data_issues",
    "reasons",
)
