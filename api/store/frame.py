"""Queries over an in-memory GeoDataFrame: the embedded store and reference layers.

Everything is vectorised: bbox and polygon tests go through the frame's STRtree
(``sindex.query``), distances through :class:`pyproj.Geod` on whole arrays.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Geod

from api.store.base import FeatureQuery, QueryResult
from api.store.cql import frame_mask
from geo.errors import InvalidQueryError

__all__ = ["query_frame", "mask_frame"]

log = logging.getLogger(__name__)

_GEOD = Geod(ellps="WGS84")


def _index_mask(gdf: gpd.GeoDataFrame, geom: shapely.Geometry) -> np.ndarray:
    mask = np.zeros(len(gdf), dtype=bool)
    mask[gdf.sindex.query(geom, predicate="intersects")] = True
    return mask


def mask_frame(gdf: gpd.GeoDataFrame, q: FeatureQuery) -> np.ndarray:
    """Boolean array of the rows of ``gdf`` matching ``q`` (paging ignored)."""
    mask = np.ones(len(gdf), dtype=bool)
    if len(gdf) == 0:
        return mask
    if q.bbox is not None:
        mask &= _index_mask(gdf, shapely.box(*q.bbox))
    if q.within is not None:
        mask &= _index_mask(gdf, q.within)
    if q.near is not None:
        lon, lat, radius = q.near
        dlat = radius / 110_000 * 1.05  # a degree box safely containing the circle
        coslat = np.cos(np.radians(min(89.0, abs(lat) + dlat)))
        dlon = min(180.0, radius / (111_000 * max(coslat, 1e-6)) * 1.05)
        mask &= _index_mask(gdf, shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat))
        cand = np.flatnonzero(mask)
        pts = gdf.geometry.values[cand]
        x, y = shapely.get_x(pts), shapely.get_y(pts)
        _, _, dist = _GEOD.inv(np.full(len(cand), lon), np.full(len(cand), lat), x, y)
        keep = np.zeros(len(gdf), dtype=bool)
        keep[cand[dist <= radius]] = True
        mask &= keep
    for col, accepted in q.properties.items():
        if col not in gdf.columns:
            raise InvalidQueryError(
                f"{col}: unknown property; expected one of "
                f"{', '.join(c for c in gdf.columns if c != gdf.geometry.name)}."
            )
        values = gdf[col]
        if pd.api.types.is_bool_dtype(values):
            acc = {str(a).lower() in ("true", "1", "yes") for a in accepted}
            mask &= values.isin(list(acc)).to_numpy()
        elif pd.api.types.is_numeric_dtype(values):
            try:
                nums = [float(a) for a in accepted]
            except ValueError as exc:
                raise InvalidQueryError(f"{col}: expected a number, got {accepted}.") from exc
            mask &= values.isin(nums).to_numpy()
        else:
            mask &= values.astype(str).isin([str(a) for a in accepted]).to_numpy()
    if q.cql is not None:
        mask &= frame_mask(gdf, q.cql).to_numpy()
    return mask


def query_frame(gdf: gpd.GeoDataFrame, q: FeatureQuery) -> QueryResult:
    """Apply ``q`` to ``gdf``: matching rows in their order, paged, plus the total."""
    mask = mask_frame(gdf, q)
    matched = gdf.loc[mask]
    start = max(q.offset, 0)
    stop = None if q.limit is None else start + q.limit
    return QueryResult(features=matched.iloc[start:stop], number_matched=int(mask.sum()))
