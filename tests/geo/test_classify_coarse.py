"""geo.classify: coarse geocodes (town radius, district/city units) and the registry-layer
reuse, on small inline layers (issue 16, mutation survivors of ``_coarse_straddle`` and
``_registry_layer``).

Oracles: distances to the basin boundary measured by shapely in UTM 49N (EPSG:32649), the
documented rounding of town radii up to 50 m, and object identity for the cache contract.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point, box

from geo import classify as cl

WEST = 113.2  # the basin's west edge; its other edges are > 20 km away from the points
LAT = 22.4


pytestmark = pytest.mark.usefixtures("fresh_classify_caches")


def _layers() -> dict[str, gpd.GeoDataFrame]:
    def frame(data: dict, geoms: list) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame(data, geometry=geoms, crs="EPSG:4326")

    return {
        # district A holds the basin's west edge (straddles), district C is clear of it
        "district": frame({"code": ["440301", "441902"], "name_zh": ["甲区", "丙区"],
                           "city_code": ["440300", "441900"], "city_zh": ["深圳市", "东莞市"]},
                          [box(113.0, 22.0, 113.5, 23.0), box(114.0, 22.0, 114.5, 23.0)]),
        "basin": frame({"id": ["maozhou"], "accuracy_m": [0.0]},
                       [box(WEST, 22.2, 113.7, 22.6)]),
        "region": frame({"id": ["guangfo"], "accuracy_m": [0.0]},
                        [box(114.1, 22.7, 114.2, 22.8)]),
        "park": frame({"id": ["p1"], "accuracy_m": [0.0]}, [box(114.3, 22.3, 114.35, 22.35)]),
    }


def _west_of_edge(metres: float) -> tuple[Point, float]:
    """A point about ``metres`` west of the basin's west edge, and its UTM distance."""
    deg_m = 111_320 * np.cos(np.radians(LAT))
    p = Point(WEST - metres / deg_m, LAT)
    utm = gpd.GeoSeries([p, box(WEST, 22.2, 113.7, 22.6).boundary], crs=4326).to_crs(32649)
    return p, float(utm.iloc[0].distance(utm.iloc[1]))


def _straddles(out: gpd.GeoDataFrame) -> list[bool]:
    return ["coarse_geocode_straddles_basin" in r.split(";") for r in out["review_reasons"]]


def test_town_radius_is_rounded_up_to_50_m() -> None:
    near, d_near = _west_of_edge(1030)
    far, d_far = _west_of_edge(1060)
    assert 1001 < d_near < 1045 and 1055 < d_far < 1070  # the oracle's distances
    pts = gpd.GeoDataFrame({"geocode_precision": ["town", "town"],
                            "geocode_accuracy_m": [1001.0, 1001.0]},
                           geometry=[near, far], crs=4326)
    # 1001 m rounds up to 1050 m: the first point is within it, the second is not
    assert _straddles(cl.classify(pts, layers=_layers())) == [True, False]


def test_town_radius_missing_or_unreadable_means_no_circle() -> None:
    p, d = _west_of_edge(20)
    assert 10 < d < 30
    far = Point(114.2, 22.9)  # > 10 km from every basin, region and park polygon
    pts = gpd.GeoDataFrame({"geocode_precision": ["town", "town", "town", "town"],
                            "geocode_accuracy_m": [np.nan, "未知", 100.0, 1000.0]},
                           geometry=[p, p, p, far], crs=4326)
    # each radius is checked on its own rows; a later radius keeps earlier rows' flags
    assert _straddles(cl.classify(pts, layers=_layers())) == [False, False, True, False]


def test_town_radius_from_the_argument() -> None:
    p, d = _west_of_edge(700)
    assert 690 < d < 710
    pts = gpd.GeoDataFrame({"geocode_precision": ["town", "coordinates"]},
                           geometry=[p, p], crs=4326)
    assert _straddles(cl.classify(pts, layers=_layers(), town_radius_m=750)) == [True, False]
    assert _straddles(cl.classify(pts, layers=_layers(), town_radius_m=650)) == [False, False]


def test_town_without_any_radius_is_checked_as_its_district(caplog) -> None:
    import logging

    pts = gpd.GeoDataFrame({"geocode_precision": ["town", "town"]},
                           geometry=[Point(113.05, 22.9), Point(114.2, 22.9)], crs=4326)
    # district A straddles the basin edge, district C lies clear of every basin
    with caplog.at_level(logging.INFO, logger="geo.classify"):
        assert _straddles(cl.classify(pts, layers=_layers())) == [True, False]
    assert "no town geocode radius: treating town geocodes like district geocodes" in (
        caplog.messages)


def test_city_geocode_follows_its_unit_code() -> None:
    # both points lie in district C (city 东莞, clear of the basin); the first stands for
    # city 440300 (深圳, whose district A straddles the basin)
    pts = gpd.GeoDataFrame({"geocode_precision": ["city", "city"],
                            "geocode_unit_code": ["440300", ""]},
                           geometry=[Point(114.2, 22.9), Point(114.2, 22.9)], crs=4326)
    assert _straddles(cl.classify(pts, layers=_layers())) == [True, False]


def test_district_geocodes_alone_are_checked() -> None:
    pts = gpd.GeoDataFrame({"geocode_precision": ["district", "district"]},
                           geometry=[Point(113.05, 22.9), Point(114.2, 22.9)], crs=4326)
    assert _straddles(cl.classify(pts, layers=_layers())) == [True, False]


def test_registry_layer_is_reused_while_the_frame_is_the_same() -> None:
    basin = _layers()["basin"]
    frame, index = cl._registry_layer("basin", basin)
    again = cl._registry_layer("basin", basin)
    assert again[0] is frame and again[1] is index
    assert [k[1] for k in cl._index_cache] == [True]  # cached as a registry entry
    other = basin.copy()
    frame2, index2 = cl._registry_layer("basin", other)  # a new frame from the registry
    assert frame2 is not frame
    assert cl._registry_layer("basin", other)[0] is frame2
    assert cl._registry_layer("region", _layers()["region"])[0] is not frame2


def test_unknown_units_and_points_outside_every_district_flag_nothing() -> None:
    layers = _layers()
    # the straddling district (A, city 深圳) last: a sentinel read as "the last one" or
    # "number 1" would pick it
    layers["district"] = layers["district"].iloc[::-1].reset_index(drop=True)
    pts = gpd.GeoDataFrame(
        {"geocode_precision": ["city", "district", "city", "district"],
         "geocode_unit_code": ["", "999999", "999999", "440301"]},
        geometry=[Point(115.5, 22.9), Point(114.2, 22.9), Point(114.2, 22.9),
                  Point(114.2, 22.9)],
        crs=4326,
    )
    out = cl.classify(pts, layers=layers)
    assert out["district"].tolist() == ["", "丙区", "丙区", "丙区"]
    # outside every district, unknown codes: nothing to straddle; a known code still counts
    assert _straddles(out) == [False, False, False, True]


# ------------------------------------------- _coarse_straddle on city/district unit codes
# Two cities of two districts each; the oracle is shapely's DE-9IM on the union of a
# city's districts (a second method: the code aggregates per district), never the code.

_D = [box(113.0, 22.0, 113.1, 22.1), box(113.1, 22.0, 113.2, 22.1),   # city X: D0, D1
      box(114.0, 22.0, 114.1, 22.1), box(114.1, 22.0, 114.2, 22.1)]   # city Y: D2, D3
_CITY_X, _CITY_Y = ["100000", "100000"], ["200000", "200000"]


def _districts() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"code": ["100001", "100002", "200001", "200002"],
                             "name_zh": ["D0", "D1", "D2", "D3"],
                             "city_code": _CITY_X + _CITY_Y, "city_zh": ["X", "X", "Y", "Y"]},
                            geometry=_D, crs=4326)


def _polys() -> dict[str, gpd.GeoDataFrame]:
    def one(g) -> gpd.GeoDataFrame:
        return gpd.GeoDataFrame({"id": ["p"]}, geometry=[g], crs=4326)

    return {"basin": one(box(113.15, 21.9, 113.3, 22.2)),    # crosses D1 only
            "region": one(box(113.9, 21.9, 114.3, 22.2)),    # holds all of city Y
            "park": one(box(114.15, 22.05, 114.5, 22.5))}    # crosses D3 only


def _oracle_city(ids: list[int], poly) -> bool:
    import shapely

    unit = shapely.union_all([_D[i] for i in ids])
    return bool(unit.relate_pattern(poly, "T********") and unit.relate_pattern(poly, "**T******"))


def _coarse(prec: list[str], unit: list[str], district: list[int]) -> dict:
    n = len(prec)
    gdf = gpd.GeoDataFrame({"geocode_precision": prec, "geocode_unit_code": unit},
                           geometry=[Point(0, 0)] * n, crs=4326)
    z = np.zeros(n)
    return cl._coarse_straddle(gdf, z, z, np.array(district, dtype=np.intp), _districts(),
                               _polys(), None)


def test_coarse_straddle_city_units_against_shapely() -> None:
    polys = _polys()
    x_ids, y_ids = [0, 1], [2, 3]
    # oracle: city X straddles the basin only, city Y the park only (inside the region)
    assert [_oracle_city(x_ids, polys[k].geometry[0]) for k in polys] == [True, False, False]
    assert [_oracle_city(y_ids, polys[k].geometry[0]) for k in polys] == [False, False, True]
    out = _coarse(
        ["city", "city", "city", "district"],
        # r0: a district code (D0, the first district) stands for its city X although the
        # point lies in city Y; r1: city Y's code, point in D0; r2: city X's code;
        # r3: a district geocode outside every district, no unit code
        ["100001", "200000", "100000", ""],
        [2, 0, 2, -1],
    )
    assert out["basin"].tolist() == [True, False, True, False]
    assert out["region"].tolist() == [False, False, False, False]  # Y wholly inside
    assert out["park"].tolist() == [False, True, False, False]


def test_coarse_straddle_city_whose_districts_are_not_first() -> None:
    # only city Y (districts 2, 3) is referenced: its districts must still be examined
    out = _coarse(["city"], ["200000"], [0])
    assert out["park"].tolist() == [True]
    assert out["basin"].tolist() == [False] and out["region"].tolist() == [False]
