"""Spatial queries for bureau staff: at a point, within a polygon, within a radius.

Input coordinates may be WGS84, CGCS2000, GCJ-02 or BD-09 (``crs=``); everything is
converted to WGS84 with :func:`geo.crs.to_wgs84` before querying. Each answer carries
counts of the matching enterprises by industry and by verdict.
"""

from __future__ import annotations

import logging
import math
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, Response

from api.geometry import query_polygon
from api.ogc import GEOJSON, features_to_geojson, json_response
from api.routers.deps import ReadDep, SettingsDep, StoreDep
from api.store import FeatureQuery, Store
from api.store.base import FID
from geo.crs import normalise_crs_name, to_wgs84
from geo.errors import InvalidQueryError

__all__ = ["router", "MAX_RADIUS_M"]

log = logging.getLogger(__name__)

router = APIRouter(prefix="/query", tags=["spatial"])

#: Largest radius accepted by /query/radius (metres): the province is ~800 km across.
MAX_RADIUS_M = 500_000.0

Crs = Annotated[str, Query(description="WGS84 (default), CGCS2000, GCJ02 or BD09")]
Lon = Annotated[float, Query(description="longitude in degrees", ge=-180, le=180)]
Lat = Annotated[float, Query(description="latitude in degrees", ge=-90, le=90)]
Limit = Annotated[int, Query(ge=0, description="features returned (counts cover all; at "
                                               "most BASINWATCH_MAX_LIMIT)")]


def _limit(limit: int, settings: object) -> int:
    top = settings.max_limit  # type: ignore[attr-defined]
    if limit > top:
        raise InvalidQueryError(f"limit: at most BASINWATCH_MAX_LIMIT={top}, got {limit}.")
    return limit


def _point(lon: float, lat: float, crs: str) -> tuple[float, float]:
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidQueryError(f"lon/lat: expected finite numbers, got ({lon}, {lat}).")
    x, y = to_wgs84(np.array([lon]), np.array([lat]), normalise_crs_name(crs))
    return float(x[0]), float(y[0])


def _answer(store: Store, q: FeatureQuery, extra: dict[str, Any]) -> JSONResponse:
    res = store.query(q)
    counts = store.counts_many(q, ("industry", "verdict"))
    body = {
        "type": "FeatureCollection",
        **extra,
        "numberMatched": res.number_matched,
        "numberReturned": len(res.features),
        "counts": {"industry": counts["industry"], "verdict": counts["verdict"]},
        "features": features_to_geojson(res.features, FID),
    }
    return json_response(body, media_type=GEOJSON)


@router.get("/point", summary="What lies at a point and what applies there")
def point(
    store: StoreDep,
    _: ReadDep,
    lon: Lon,
    lat: Lat,
    crs: Crs = "WGS84",
) -> JSONResponse:
    """Same answer as ``basinwatch locate``, plus counts of enterprises in the district."""
    from geo.pipeline import locate

    answer = locate(lon, lat, normalise_crs_name(crs))
    location = answer.get("location") or {}
    code = location.get("district_code") if isinstance(location, dict) else None
    if code:
        q = FeatureQuery(properties={"district_code": [str(code)]})
        counts = store.counts_many(q, ("industry", "verdict"))  # one pass, not two scans
        answer["district_enterprises"] = {
            "district_code": code,
            "industry": counts["industry"],
            "verdict": counts["verdict"],
        }
    return JSONResponse(answer)


@router.post("/within", summary="Enterprises within a polygon", response_class=Response,
             responses={200: {"content": {GEOJSON: {}}}})
def within(
    request: Request,
    store: StoreDep,
    settings: SettingsDep,
    _: ReadDep,
    geojson: Annotated[dict[str, Any], Body(description="GeoJSON Polygon/MultiPolygon/Feature/"
                                            "FeatureCollection", examples=[{
                                                "type": "Polygon",
                                                "coordinates": [[[116.3, 23.1], [116.6, 23.1],
                                                                 [116.6, 23.4], [116.3, 23.1]]]}])],
    crs: Crs = "WGS84",
    limit: Limit = 1000,
) -> JSONResponse:
    """Enterprises inside (or on the edge of) the posted polygon, with counts.

    The polygon is bounded (``BASINWATCH_MAX_VERTICES``, ``BASINWATCH_MAX_BODY_KB``) and, if
    self-intersecting, repaired within ``BASINWATCH_GEOMETRY_TIMEOUT_S``."""
    name = normalise_crs_name(crs)
    geom = query_polygon(request, geojson, param="body", crs=name)
    q = FeatureQuery(within=geom, limit=_limit(limit, settings))
    return _answer(store, q, {"query": {"crs": name, "bbox": list(geom.bounds)}})


@router.get("/radius", summary="Enterprises within a radius of a point",
            response_class=Response, responses={200: {"content": {GEOJSON: {}}}})
def radius(
    store: StoreDep,
    settings: SettingsDep,
    _: ReadDep,
    lon: Lon,
    lat: Lat,
    radius_m: Annotated[float, Query(gt=0, le=MAX_RADIUS_M, description="radius in metres")],
    crs: Crs = "WGS84",
    limit: Limit = 1000,
) -> JSONResponse:
    """Enterprises within ``radius_m`` metres (geodesic) of the point, with counts."""
    x, y = _point(lon, lat, crs)
    q = FeatureQuery(near=(x, y, radius_m), limit=_limit(limit, settings))
    return _answer(store, q, {"query": {"lon": x, "lat": y, "radius_m": radius_m,
                                        "crs_in": normalise_crs_name(crs)}})

