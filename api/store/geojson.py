"""GeoJSON features straight from column arrays: the fast path of the OGC items routes.

A store answers :meth:`~api.store.base.Store.geojson_page` and
:meth:`~api.store.base.Store.geojson_feature` without building a GeoDataFrame per request:
the embedded store from per-version column arrays, PostGIS with JSON built in SQL (an
``orjson.Fragment`` spliced into the answer as is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["FeaturePage", "json_values", "point_features_from_arrays"]


@dataclass
class FeaturePage:
    """One page of GeoJSON features and the number of features matched.

    ``features`` is a list of feature dicts or an ``orjson.Fragment`` holding the JSON
    array already encoded (PostGIS).
    """

    features: Any
    number_returned: int
    number_matched: int


def json_values(values: pd.Series) -> np.ndarray:
    """Object array of JSON-ready Python scalars of a column; missing values (NaN, NA) None."""
    missing = values.isna().to_numpy()
    out = np.empty(len(values), dtype=object)
    out[:] = values.astype(object).tolist() if values.dtype != object else values.tolist()
    if missing.any():
        out[missing] = None
    return out


def point_features_from_arrays(
    ids: Sequence[Any], xs: Sequence[float], ys: Sequence[float],
    names: Sequence[str], columns: Sequence[Sequence[Any]],
) -> list[dict[str, Any]]:
    """GeoJSON point features from parallel lists (one per property in ``columns``)."""
    rows = zip(*columns, strict=True) if columns else (() for _ in ids)
    return [
        {"type": "Feature", "id": fid, "properties": dict(zip(names, row, strict=True)),
         "geometry": {"type": "Point", "coordinates": [x, y]}}
        for fid, x, y, row in zip(ids, xs, ys, rows, strict=True)
    ]
