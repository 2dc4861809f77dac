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
