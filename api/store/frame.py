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

from api.store.base import FeatureQuery, QueryResult, bbox_boxes, parse_bool
from api.store.cql import frame_mask
from geo.errors import InvalidQueryError

__all__ = ["query_frame", "mask_frame", "select_positions", "property_mask"]

log = logging.getLogger(__name__)

_GEOD = Geod(ellps="WGS84")


def _spatial_candidates(gdf: gpd.GeoDataFrame, q: FeatureQuery) -> np.ndarray | None:
    """Sorted positions passing the spatial parts of ``q`` (None when it has none)."""
    cand: np.ndarray | None = None

    def narrow(geom: shapely.Geometry) -> None:
        nonlocal cand
        hit = np.unique(gdf.sindex.query(geom, predicate="intersects"))
        cand = hit if cand is None else np.intersect1d(cand, hit, assume_unique=True)

    if q.bbox is not None:
        narrow(shapely.union_all([shapely.box(*b) for b in bbox_boxes(q.bbox)]))
    if q.within is not None:
        narrow(q.within)
    if q.near is not None:
        lon, lat, radius = q.near
        dlat = radius / 110_000 * 1.05  # a degree box safely containing the circle
        coslat = np.cos(np.radians(min(89.0, abs(lat) + dlat)))
        dlon = min(180.0, radius / (111_000 * max(coslat, 1e-6)) * 1.05)
        narrow(shapely.box(lon - dlon, lat - dlat, lon + dlon, lat + dlat))
        assert cand is not None
        pts = gdf.geometry.values[cand]
        x, y = shapely.get_x(pts), shapely.get_y(pts)
        _, _, dist = _GEOD.inv(np.full(len(cand), lon), np.full(len(cand), lat), x, y)
        cand = cand[dist <= radius]
    return cand


def property_mask(gdf: pd.DataFrame, col: str, accepted: object) -> np.ndarray:
    """Rows of ``gdf`` whose ``col`` is one of ``accepted`` (compared as the column's type).

    Raises
    ------
    InvalidQueryError
        If the column is unknown or a numeric column gets a non-number.
    """
    if col not in gdf.columns:
        geom_name = gdf.geometry.name if isinstance(gdf, gpd.GeoDataFrame) else None
        raise InvalidQueryError(
            f"{col}: unknown property; expected one of "
            f"{', '.join(c for c in gdf.columns if c != geom_name)}."
        )
    values = gdf[col]
    acc = list(accepted)  # type: ignore[call-overload]
    if pd.api.types.is_bool_dtype(values):
        flags = {parse_bool(a, col) for a in acc}
        return values.isin(list(flags)).to_numpy()
    if pd.api.types.is_numeric_dtype(values):
        try:
            nums = [float(a) for a in acc]
        except ValueError as exc:
            raise InvalidQueryError(f"{col}: expected a number, got {acc}.") from exc
        return values.isin(nums).to_numpy()
    return values.astype(str).isin([str(a) for a in acc]).to_numpy()


def select_positions(gdf: gpd.GeoDataFrame, q: FeatureQuery) -> np.ndarray:
    """Sorted row positions of ``gdf`` matching ``q`` (paging ignored).

    Spatial parts go through the STRtree first, so attribute and CQL filters only look at
    the candidates; without spatial parts the whole frame is filtered.
    """
    if len(gdf) == 0:
        return np.zeros(0, dtype=np.intp)
    cand = _spatial_candidates(gdf, q)
    if cand is not None and not q.properties and q.cql is None:
        return cand
    sub = gdf if cand is None else gdf.iloc[cand]
    keep = np.ones(len(sub), dtype=bool)
    for col, accepted in q.properties.items():
        keep &= property_mask(sub, col, accepted)
    if q.cql is not None and len(sub):
        keep &= frame_mask(sub, q.cql).to_numpy(dtype=bool)
    pos = np.flatnonzero(keep)
    return pos if cand is None else cand[pos]


def mask_frame(gdf: gpd.GeoDataFrame, q: FeatureQuery) -> np.ndarray:
    """Boolean array of the rows of ``gdf`` matching ``q`` (paging ignored)."""
    mask = np.zeros(len(gdf), dtype=bool)
    mask[select_positions(gdf, q)] = True
    return mask if len(gdf) else np.ones(0, dtype=bool)


def query_frame(gdf: gpd.GeoDataFrame, q: FeatureQuery) -> QueryResult:
    """Apply ``q`` to ``gdf``: matching rows in their order, paged, plus the total."""
    pos = select_positions(gdf, q)
    start = max(q.offset, 0)
    stop = None if q.limit is None else start + q.limit
    return QueryResult(features=gdf.iloc[pos[start:stop]], number_matched=len(pos))


