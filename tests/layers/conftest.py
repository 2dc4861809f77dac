"""Fixtures of the layer tests: real boundary files written in every format the importer reads.

Files are written with pyogrio/GDAL (and zipfile for archives) into ``tmp_path``; their
coordinates come from WGS84 vertices through transformations computed here, independently
of the code under test (closed formulas or PROJ pipelines spelled out in the test).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

#: A ~6 km x 4 km quadrilateral in 东莞 塘厦 (inside Guangdong, away from every basin edge),
#: WGS84 lon/lat; its first vertex is on the 114E central meridian of EPSG:4547.
WGS84_RING = [(114.0, 22.80), (114.06, 22.80), (114.06, 22.84), (114.0, 22.84), (114.0, 22.80)]

# CGCS2000 / GRS80 ellipsoid
_A = 6378137.0
_F = 1 / 298.257222101
_E2 = _F * (2 - _F)


def meridian_arc(lat_deg: float) -> float:
    """Meridian arc length (m) from the equator on GRS80 (Helmert series, < 1 mm)."""
    p = math.radians(lat_deg)
    e2, e4, e6 = _E2, _E2**2, _E2**3
    return _A * (
        (1 - e2 / 4 - 3 * e4 / 64 - 5 * e6 / 256) * p
        - (3 * e2 / 8 + 3 * e4 / 32 + 45 * e6 / 1024) * math.sin(2 * p)
        + (15 * e4 / 256 + 45 * e6 / 1024) * math.sin(4 * p)
        - (35 * e6 / 3072) * math.sin(6 * p)
    )


# --- GCJ-02 / BD-09 forward formulas, written out here as published (not geo.crs) --------
_GA, _GEE = 6378245.0, 0.00669342162296594323


def _tlat(x: float, y: float) -> float:
    r = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    r += (160.0 * math.sin(y / 12.0 * math.pi) + 320 * math.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    return r


def _tlon(x: float, y: float) -> float:
    r = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * math.sqrt(abs(x))
    r += (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    r += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    r += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    return r


def wgs_to_gcj(lon: float, lat: float) -> tuple[float, float]:
    """The public WGS84 -> GCJ-02 formula."""
    dlat, dlon = _tlat(lon - 105.0, lat - 35.0), _tlon(lon - 105.0, lat - 35.0)
    rad = lat / 180.0 * math.pi
    magic = 1 - _GEE * math.sin(rad) ** 2
    sq = math.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GA * (1 - _GEE)) / (magic * sq) * math.pi)
    dlon = (dlon * 180.0) / (_GA / sq * math.cos(rad) * math.pi)
    return lon + dlon, lat + dlat


def gcj_to_bd(lon: float, lat: float) -> tuple[float, float]:
    """The public GCJ-02 -> BD-09 formula."""
    xpi = math.pi * 3000.0 / 180.0
    z = math.sqrt(lon * lon + lat * lat) + 0.00002 * math.sin(lat * xpi)
    t = math.atan2(lat, lon) + 0.000003 * math.cos(lon * xpi)
    return z * math.cos(t) + 0.0065, z * math.sin(t) + 0.006


def frame(ring: list[tuple[float, float]], crs: str | None, **props: object) -> gpd.GeoDataFrame:
    """One-feature frame of a polygon ring."""
    data = {k: [v] for k, v in props.items()}
    return gpd.GeoDataFrame(data, geometry=[shapely.Polygon(ring)], crs=crs)


def zip_shapefile(shp: Path, *, drop: tuple[str, ...] = ()) -> Path:
    """Zip a Shapefile with its siblings (minus the suffixes in ``drop``)."""
    out = shp.with_suffix(".zip")
    with zipfile.ZipFile(out, "w") as zf:
        for part in sorted(shp.parent.glob(shp.stem + ".*")):
            if part.suffix.lower() in (".zip", *drop):
                continue
            zf.write(part, part.name)
    return out


@pytest.fixture
def wgs84_ring() -> list[tuple[float, float]]:
    """The test polygon's WGS84 ring."""
    return list(WGS84_RING)


@pytest.fixture
def ring_4547() -> list[tuple[float, float]]:
    """The ring in EPSG:4547, through an explicit PROJ pipeline (not the importer's path)."""
    from pyproj import Transformer

    tr = Transformer.from_pipeline(
        "+proj=pipeline +step +proj=unitconvert +xy_in=deg +xy_out=rad "
        "+step +proj=tmerc +lat_0=0 +lon_0=114 +k=1 +x_0=500000 +y_0=0 +ellps=GRS80"
    )
    xs, ys = tr.transform([p[0] for p in WGS84_RING], [p[1] for p in WGS84_RING])
    return list(zip(xs, ys, strict=True))


def ring_of(gdf: gpd.GeoDataFrame) -> np.ndarray:
    """Exterior coordinates of the first polygon of a frame."""
    geom = gdf.geometry.iloc[0]
    if geom.geom_type == "MultiPolygon":
        geom = geom.geoms[0]
    return np.asarray(geom.exterior.coords)
