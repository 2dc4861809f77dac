"""Column names of every pipeline stage: the single source of truth.

Machine-readable outputs use these English snake_case names; human-facing outputs map
them to Chinese labels from ``layers/data/labels.toml``.
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd

__all__ = [
    "TEXT_DTYPE",
    "INGEST_COLUMNS",
    "REJECTED_COLUMNS",
    "GEOCODE_COLUMNS",
    "CLASSIFY_COLUMNS",
    "RULES_COLUMNS",
    "DEADLINE_STATUSES",
    "UNIT_COLUMNS",
    "ENFORCEMENT_COLUMNS",
    "OPTIONAL_OUTPUT_COLUMNS",
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
    "industry_code",
    "address",
    "lon_in",
    "lat_in",
    "crs_in",
    "park_claimed",
    "data_issues",
)

#: ``source`` says which table ``row`` counts in: ``registry`` (the enterprise list) or
#: ``equipment`` (the 设备清单 sheet/file).
REJECTED_COLUMNS: Final = ("row", "uscc", "name", "field", "reason", "message", "source")

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

#: Added by geo.rules: ``deadline`` (ISO date or ''), ``deadline_status`` (one of
#: :data:`DEADLINE_STATUSES` or ''), ``price_measures`` (ids of rules.toml [measures]),
#: ``unit_count`` (equipment units of the enterprise) and ``units`` (the flagged units with
#: their verdicts).
RULES_COLUMNS: Final = (
    "verdict", "standards", "rule_ids", "reasons", "deadline", "deadline_status",
    "price_measures", "unit_count", "units",
)

#: Values of ``deadline_status``: the action is due at once (立即), by a date not yet past
#: (pending), by a date already past on the as-of date (overdue), or by a date the data
#: does not give (undetermined); '' when the verdict asks for no action with a deadline.
DEADLINE_STATUSES: Final = ("immediate", "pending", "overdue", "undetermined")

#: Columns of the per-unit result (enforcement_units.csv, the Excel 设备清单 sheet), in
#: order; the measure and attribute columns of equipment.toml follow in the CSV.
UNIT_COLUMNS: Final = (
    "enterprise_row",
    "uscc",
    "name",
    "industry",
    "source",
    "source_row",
    "unit_id",
    "unit_type",
    "unit_type_zh",
    "measures",
    "verdict",
    "rule_ids",
    "reasons",
    "deadline",
    "deadline_status",
    "needs_review",
    "review_reasons",
    "data_issues",
)

#: Columns of every enforcement list (files, stores, API), in order.
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
    "deadline",
    "deadline_status",
    "price_measures",
    "unit_count",
    "units",
)


#: Columns file exports add when the frame has them (the pipeline's always does; a list
#: read back from a store may not), each placed right after the column named here. The
#: registry's optional numeric attributes (``layers/data/registry.toml`` [numeric]) follow
#: at the end, also only when present.
OPTIONAL_OUTPUT_COLUMNS: Final = {"industry_code": "industry"}


def _python_str_dtype() -> Any:
    """pandas' ``str`` dtype with Python-object storage (pointer-copy ``take``).

    With pyarrow installed, plain ``"str"`` is arrow-backed, whose ``take`` copies every
    string's bytes: 1M rows of long reason texts cost hundreds of MB and ms.
    """
    try:
        return pd.StringDtype("python", na_value=np.nan)
    except TypeError:  # pandas < 2.3: no na_value, "str" is object-backed anyway
        return "str"


#: dtype of the text columns the engine creates.
TEXT_DTYPE: Final = _python_str_dtype()
