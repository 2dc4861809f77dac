"""Small helpers of geo.classify against hand-written expectations (issue 16, survivors of
``_is_wgs84``, ``_checked``, ``_take_str`` and ``_build_kind_index``'s log line).

Oracles: pyproj's own CRS identities written out by hand (OGC:CRS84 is WGS84 with lon/lat
axis order and has no EPSG code), the docstring of ``_checked`` ("index reset"), the dtype
``TEXT_DTYPE`` the module promises for text columns, and the log line's text.
"""

from __future__ import annotations

import logging

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import MultiPolygon, Polygon, box

from geo import classify as C
from geo.errors import CRSMismatchError


@pytest.mark.parametrize(
    "crs, want",
    [(None, False), ("EPSG:4326", True), ("OGC:CRS84", True), ("EPSG:4490", False),
     ("EPSG:32649", False), ("EPSG:4979", False)],
)
def test_is_wgs84(crs, want) -> None:
    assert C._is_wgs84(crs) is want


def test_check_crs_accepts_crs84_and_rejects_cgcs2000() -> None:
    frame = gpd.GeoDataFrame({"id": [1]}, geometry=[box(0, 0, 1, 1)], crs="OGC:CRS84")
    C._check_crs(frame, "x")  # lon/lat WGS84: accepted
    with pytest.raises(CRSMismatchError, match=r"^x is in EPSG:4490, but classification"):
        C._check_crs(frame.set_crs("EPSG:4490", allow_override=True), "x")


def test_checked_resets_the_index_without_keeping_it() -> None:
    frame = gpd.GeoDataFrame({"id": ["a", "b"]}, geometry=[box(0, 0, 1, 1), box(1, 0, 2, 1)],
                             crs="EPSG:4326", index=[7, 3])
    out = C._checked("park", frame)
    assert list(out.columns) == ["id", "geometry"]
    assert list(out.index) == [0, 1] and list(out["id"]) == ["a", "b"]


def test_take_str_dtype_and_missing() -> None:
    out = C._take_str(["x", "y"], np.array([1, -1, 0]))
    assert out.dtype == C._STR
    assert list(out) == ["y", "", "x"]


def test_build_kind_index_logs_its_groups(caplog: pytest.LogCaptureFixture) -> None:
    frame = gpd.GeoDataFrame(
        {"code": ["1", "2"], "name_zh": ["a", "b"], "city_code": ["9", "9"],
         "city_zh": ["c", "c"]},
        geometry=[box(113.0, 22.0, 113.1, 22.1), box(113.1, 22.0, 113.2, 22.1)],
        crs="EPSG:4326",
    )
    caplog.set_level(logging.DEBUG, logger="geo.classify")
    idx = C._build_kind_index("district", frame)
    assert idx.polygons.size == 2
    assert [r.getMessage() for r in caplog.records if r.name == "geo.classify"] == [
        "district index: 2 polygons in 1 group(s), 0 band group(s)"  # edge-sharing: one group
    ]


def test_classify_rejects_non_frames_non_points_and_other_crs_with_exact_messages() -> None:
    with pytest.raises(TypeError) as e:
        C.classify([(113.0, 22.0)])
    assert str(e.value) == "classify() needs a GeoDataFrame with point geometry."
    poly = gpd.GeoDataFrame({"a": [1]}, geometry=[box(113.0, 22.0, 113.1, 22.1)],
                            crs="EPSG:4326")
    with pytest.raises(TypeError) as e:
        C.classify(poly)
    assert str(e.value) == "classify() needs point geometry; call .centroid or geocode first."
    pts = gpd.GeoDataFrame({"a": [1]}, geometry=gpd.points_from_xy([500000.0], [2.4e6]),
                           crs="EPSG:32649")
    with pytest.raises(CRSMismatchError) as e:
        C.classify(pts)
    assert str(e.value).startswith("The enterprise frame is in EPSG:32649, but classification")


def test_fingerprint_tells_apart_type_vertex_count_and_bounds() -> None:
    def fp(geom, exact):
        frame = gpd.GeoDataFrame({"code": ["1"]}, geometry=[geom], crs="EPSG:4326")
        return C._fingerprint("district", frame, exact=exact)

    square = box(0.0, 0.0, 1.0, 1.0)
    multi = MultiPolygon([square])  # same bounds and coordinates, another type
    extra = Polygon([(0, 0), (0.5, 0), (1, 0), (1, 1), (0, 1)])  # one more vertex
    bigger = box(0.0, 0.0, 2.0, 2.0)  # same type and vertex count
    for exact in (False, True):
        assert len(fp(square, exact)) == 40  # blake2b, 20-byte digest
        assert fp(square, exact) == fp(box(0.0, 0.0, 1.0, 1.0), exact)
        assert len({fp(g, exact) for g in (square, multi, extra, bigger)}) == 4


def test_kind_index_cache_tells_apart_frames_with_equal_bounds_and_vertex_counts() -> None:
    # two triangles with the same bbox and vertex count: only the exact hash separates them
    a = Polygon([(0, 0), (2, 0), (0.5, 1)])
    b = Polygon([(0, 0), (2, 0), (1.5, 1)])
    C._index_cache.clear()
    try:
        for tri in (a, b):
            frame = gpd.GeoDataFrame({"code": ["1"]}, geometry=[tri], crs="EPSG:4326")
            idx = C._kind_index("district", frame, from_registry=False)
            x, y = np.array([0.6, 1.4]), np.array([0.8, 0.8])
            which, _ = idx.polygons.assign(x, y)
            want = np.where(shapely.contains_xy(tri, x, y), 0, -1)
            np.testing.assert_array_equal(which, want)
    finally:
        C._index_cache.clear()


def test_layer_index_assign_looks_at_every_group() -> None:
    # A and B overlap (two groups); a point only in B, one in both, one in neither
    polys = np.array([box(0, 0, 2, 2), box(1, 1, 3, 3)], dtype=object)
    li = C._LayerIndex.build(polys)
    assert len(li.indexes) == 2
    x, y = np.array([2.5, 1.5, 5.0]), np.array([2.5, 1.5, 5.0])
    which, more = li.assign(x, y)
    np.testing.assert_array_equal(which, [1, 0, -1])
    np.testing.assert_array_equal(more, [False, True, False])
    # no point in the first group: the second group still answers
    which, more = li.assign(np.array([2.5]), np.array([2.5]))
    np.testing.assert_array_equal(which, [1])
    np.testing.assert_array_equal(more, [False])
