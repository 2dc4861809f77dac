"""Tests for geo.crs: round trips over Guangdong, shapes, CRS names."""

from __future__ import annotations

import numpy as np
import pytest
from pyproj import Geod

from geo.crs import (
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_wgs84,
    normalise_crs_name,
    to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo.errors import UnknownCRSError

GEOD = Geod(ellps="WGS84")
# 0.05-degree grid over the Guangdong bounding box (lon 109.6-117.4, lat 20.1-25.6)
LON, LAT = np.meshgrid(np.arange(109.6, 117.41, 0.05), np.arange(20.1, 25.61, 0.05))


def _metres(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    return GEOD.inv(lon1.ravel(), lat1.ravel(), lon2.ravel(), lat2.ravel())[2]


def test_gcj02_round_trip_below_one_metre() -> None:
    back = gcj02_to_wgs84(*wgs84_to_gcj02(LON, LAT))
    assert _metres(LON, LAT, *back).max() < 1.0


def test_bd09_round_trip_below_one_metre() -> None:
    back = bd09_to_wgs84(*wgs84_to_bd09(LON, LAT))
    assert _metres(LON, LAT, *back).max() < 1.0


def test_offsets_have_documented_magnitude() -> None:
    # GCJ-02 is offset 100-700 m from WGS84 (domain brief); BD-09 adds more
    gcj = _metres(LON, LAT, *wgs84_to_gcj02(LON, LAT))
    assert gcj.min() > 100 and gcj.max() < 700
    bd = _metres(LON, LAT, *wgs84_to_bd09(LON, LAT))
    assert bd.min() > gcj.min()


def test_shapes_preserved_and_scalars() -> None:
    lon, lat = wgs84_to_gcj02(LON, LAT)
    assert lon.shape == LON.shape and lat.shape == LAT.shape
    one = gcj02_to_wgs84(113.9, 22.5)
    assert np.ndim(one[0]) == 0
    empty = gcj02_to_wgs84(np.array([]), np.array([]))
    assert empty[0].shape == (0,)


def test_to_wgs84_per_row_names() -> None:
    lon = np.array([113.9, 113.9, 113.9, 113.9])
    lat = np.array([22.5, 22.5, 22.5, 22.5])
    glon, glat = wgs84_to_gcj02(lon, lat)
    blon, blat = wgs84_to_bd09(lon, lat)
    names = np.array(["WGS84", "CGCS2000", "GCJ02", "BD09"], dtype=object)
    out_lon, out_lat = to_wgs84(
        [lon[0], lon[1], glon[2], blon[3]], [lat[0], lat[1], glat[2], blat[3]], names
    )
    assert _metres(lon, lat, out_lon, out_lat).max() < 1.0


def test_from_wgs84_inverse_of_to_wgs84() -> None:
    for name in ("WGS84", "CGCS2000", "GCJ02", "BD09"):
        back = to_wgs84(*from_wgs84(LON, LAT, name), name)
        assert _metres(LON, LAT, *back).max() < 1.0


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("gcj-02", "GCJ02"), (" 百度 ", "BD09"), ("EPSG:4490", "CGCS2000"), (None, "WGS84"),
     (float("nan"), "WGS84"), ("", "WGS84"), ("高德", "GCJ02"), (4326, "WGS84")],
)
def test_normalise_crs_name(raw: object, canonical: str) -> None:
    assert normalise_crs_name(raw) == canonical


def test_unknown_crs_errors() -> None:
    with pytest.raises(UnknownCRSError, match="火星"):
        normalise_crs_name("火星")
    with pytest.raises(UnknownCRSError, match="EPSG:3857"):
        to_wgs84([113.0], [23.0], np.array(["EPSG:3857"], dtype=object))
    with pytest.raises(UnknownCRSError):
        from_wgs84([113.0], [23.0], "UTM50")
    assert issubclass(UnknownCRSError, ValueError)


def test_numeric_and_missing_crs_cells() -> None:
    import pandas as pd

    from geo.crs import normalise_crs_name

    assert normalise_crs_name(4326.0) == "WGS84"
    assert normalise_crs_name(4490) == "CGCS2000"
    assert normalise_crs_name(pd.NA) == "WGS84"
