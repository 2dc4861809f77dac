"""Untrusted query polygons: parsed, bounded, converted and repaired within limits.

Every polygon a client sends (``POST /query/within``, ``within=`` of ``/map/area`` and
``/exports/enforcement``) goes through :func:`query_polygon`:

1. the vertex count is checked before any geometry is built (``BASINWATCH_MAX_VERTICES``),
   and every coordinate must be a finite number;
2. coordinates are converted to WGS84 (``crs=``) and must then be lon/lat degrees;
3. an invalid polygon (self-intersections) or a collection of several is repaired and
   merged in a geometry worker process within ``BASINWATCH_GEOMETRY_TIMEOUT_S``
   (:class:`api.workers.GeometryWorkers`); a client that goes away stops the work.

Errors are 4xx OGC exceptions naming the parameter and the limit.
"""

from __future__ import annotations

import json
import logging
import math
from typing import Any

import numpy as np
import shapely
from fastapi import Request

from api.limits import GeometryTooComplexError
from geo.errors import InvalidQueryError

__all__ = ["query_polygon", "count_coordinates", "polygons_from_geojson", "polygons_from_text"]

log = logging.getLogger(__name__)

_POLYGONAL = ("Polygon", "MultiPolygon")
_DEPTH = {"Polygon": 3, "MultiPolygon": 4}


def count_coordinates(coords: Any, depth: int, *, param: str, cap: int) -> int:
    """Positions in a GeoJSON ``coordinates`` array of nesting ``depth``, checked to be
    finite numbers, without building any geometry; stops as soon as ``cap`` is passed."""
    n = 0
    stack: list[tuple[Any, int]] = [(coords, depth)]
    while stack:
        node, d = stack.pop()
        if not isinstance(node, list | tuple):
            raise InvalidQueryError(f"{param}: coordinates must be nested arrays of "
                                    "[lon, lat] positions.")
        if d == 1:
            if len(node) < 2 or not all(
                isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)
                for v in node
            ):
                raise InvalidQueryError(f"{param}: a position must be [lon, lat] finite "
                                        f"numbers, got {str(node)[:60]}.")
            n += 1
            if n > cap:
                raise GeometryTooComplexError(
                    f"{param}: more than BASINWATCH_MAX_VERTICES={cap} vertices; simplify "
                    "the polygon."
                )
        else:
            stack.extend((child, d - 1) for child in node)
    return n


def polygons_from_geojson(doc: Any, *, param: str, cap: int) -> list[shapely.Geometry]:
    """Polygons of a GeoJSON Polygon, MultiPolygon, Feature or FeatureCollection."""
    out: list[shapely.Geometry] = []
    total = 0
    stack = [doc]
    while stack:
        node = stack.pop()
        if not isinstance(node, dict) or "type" not in node:
            raise InvalidQueryError(f"{param}: expected a GeoJSON Polygon, MultiPolygon, "
                                    "Feature or FeatureCollection.")
        kind = node["type"]
        if kind == "FeatureCollection":
            feats = node.get("features")
            if not isinstance(feats, list) or not feats:
                raise InvalidQueryError(f"{param}: the FeatureCollection has no features.")
            stack.extend(reversed(feats))
            continue
        if kind == "Feature":
            stack.append(node.get("geometry"))
            continue
        if kind not in _POLYGONAL:
            raise InvalidQueryError(f"{param}: expected a Polygon or MultiPolygon, got {kind}.")
        total += count_coordinates(node.get("coordinates"), _DEPTH[kind], param=param,
                                   cap=cap - total)
        try:
            geom = shapely.geometry.shape({"type": kind, "coordinates": node["coordinates"]})
        except Exception as exc:  # shapely raises several types for malformed rings
            raise InvalidQueryError(f"{param}: not a valid GeoJSON {kind} ({exc}).") from exc
        out.append(geom)
    return out


def polygons_from_text(text: str, *, param: str, cap: int) -> list[shapely.Geometry]:
    """Polygons of WKT or GeoJSON text."""
    raw = text.strip()
    if raw.startswith("{"):
        try:
            doc = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            raise InvalidQueryError(f"{param}: not valid GeoJSON ({exc}).") from exc
        return polygons_from_geojson(doc, param=param, cap=cap)
    if raw.count(",") + 1 > cap * 2:  # cheap bound before parsing
        raise GeometryTooComplexError(
            f"{param}: more than BASINWATCH_MAX_VERTICES={cap} vertices; simplify the polygon."
        )
    try:
        geom = shapely.from_wkt(raw)
    except Exception as exc:  # GEOS raises several types
        raise InvalidQueryError(
            f"{param}: expected a WKT or GeoJSON Polygon in lon/lat; got '{raw[:80]}' ({exc})."
        ) from exc
    if geom is None or geom.is_empty or geom.geom_type not in _POLYGONAL:
        kind = "an empty geometry" if geom is None or geom.is_empty else geom.geom_type
        raise InvalidQueryError(f"{param}: expected a Polygon or MultiPolygon, got {kind}.")
    n = int(shapely.get_num_coordinates(geom))
    if n > cap:
        raise GeometryTooComplexError(
            f"{param}: {n} vertices, more than BASINWATCH_MAX_VERTICES={cap}; simplify the "
            "polygon."
        )
    coords = shapely.get_coordinates(geom)
    if not np.isfinite(coords).all():
        raise InvalidQueryError(f"{param}: coordinates must be finite numbers.")
    return [geom]


def _to_wgs84(geoms: list[shapely.Geometry], crs: str, param: str) -> list[shapely.Geometry]:
    from geo.crs import to_wgs84

    out = []
    for g in geoms:
        xy = shapely.get_coordinates(g)
        if crs != "WGS84":
            if (np.abs(xy[:, 0]) > 180).any() or (np.abs(xy[:, 1]) > 90).any():
                raise InvalidQueryError(f"{param}: {crs} coordinates must be lon/lat degrees.")
            with np.errstate(all="ignore"):
                xy = np.column_stack(to_wgs84(xy[:, 0], xy[:, 1], crs))
        if not np.isfinite(xy).all() or (np.abs(xy[:, 0]) > 180).any() or (
                np.abs(xy[:, 1]) > 90).any():
            where = (f" after conversion from {crs} (defined in and near China only)"
                     if crs != "WGS84" else "")
            raise InvalidQueryError(f"{param}: coordinates must be lon/lat degrees within "
                                    f"[-180, 180] x [-90, 90]{where}.")
        out.append(g if crs == "WGS84" else shapely.set_coordinates(g, xy))
    return out


def query_polygon(
    request: Request,
    source: Any,
    *,
    param: str,
    crs: str = "WGS84",
) -> shapely.Geometry | None:
    """A valid WGS84 (multi)polygon from a GeoJSON document or WKT/GeoJSON text.

    Parameters
    ----------
    request
        The request (its app's limits and geometry workers, its cancel token).
    source
        A parsed GeoJSON document (dict) or text; None or blank text gives None.
    param
        Parameter name used in error messages.
    crs
        Coordinate system of the input (normalised name: WGS84, CGCS2000, GCJ02, BD09).

    Raises
    ------
    InvalidQueryError, GeometryTooComplexError, TooManyRequestsError
        4xx answers naming ``param`` and the limit.
    """
    settings = request.app.state.settings
    cap = settings.max_vertices
    if source is None or (isinstance(source, str) and not source.strip()):
        return None
    geoms = (polygons_from_text(source, param=param, cap=cap) if isinstance(source, str)
             else polygons_from_geojson(source, param=param, cap=cap))
    geoms = _to_wgs84(geoms, crs, param)
    if len(geoms) == 1 and geoms[0].is_valid:
        return geoms[0]
    workers = request.app.state.geometry_workers
    token = getattr(request.state, "cancel", None)
    cancelled = (lambda: token.cancelled) if token is not None else None
    wkb = workers.repair([shapely.to_wkb(g) for g in geoms], cancelled=cancelled, what=param)
    geom = shapely.from_wkb(wkb)
    if geom.is_empty or geom.geom_type not in _POLYGONAL:
        raise InvalidQueryError(f"{param}: the polygon encloses no area.")
    if shapely.get_num_coordinates(geom) > 4 * cap:
        raise GeometryTooComplexError(
            f"{param}: the repaired polygon has more than 4 x BASINWATCH_MAX_VERTICES "
            "vertices; send a valid polygon."
        )
    return geom
