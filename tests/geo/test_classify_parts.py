"""geo.classify's building blocks against independent oracles (issue 16, mutation survivors).

Each helper is checked against a second method: brute-force ``shapely.contains_xy`` /
``relate_pattern`` over every pair (no bbox pruning), distances measured by shapely in a
metric CRS, UTM zone numbers written by hand from the zone definition (6° zones from
180° W; EPSG 326zz north, 327zz south), and hand-written truth tables. The module caches
are cleared around every test so the build paths run, not a cached index.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point, box

from geo import classify as cl
from geo.errors import ReferenceDataError


pytestmark = pytest.mark.usefixtures("fresh_classify_caches")


def _brute_inside(geom, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    ok = np.isfinite(x) & np.isfinite(y)
    hit = np.zeros(len(x), dtype=bool)
    hit[ok] = shapely.contains_xy(geom, x[ok], y[ok])
    return np.flatnonzero(hit)


# ------------------------------------------------------------------ _PointIndex
def test_point_index_inside_equals_brute_force() -> None:
    rng = np.random.default_rng(16)
    x = rng.uniform(113.0, 114.0, 3000)
    y = rng.uniform(22.0, 23.0, 3000)
    x[::97] = np.nan  # missing coordinates are never inside
    y[::89] = np.inf
    index = cl._PointIndex(x, y)
    for geom in (
        box(113.4, 22.4, 113.6, 22.7),  # middle of the x order: lo > 0, hi < n
        shapely.Polygon([(113.1, 22.1), (113.9, 22.2), (113.5, 22.9)]),
        box(113.0, 22.0, 114.0, 23.0).difference(box(113.3, 22.3, 113.7, 22.7)),  # hole
    ):
        got = np.sort(index.inside(geom))
        np.testing.assert_array_equal(got, _brute_inside(geom, x, y))
        assert got.size > 0


def test_point_index_nothing_inside_is_an_empty_position_array() -> None:
    x = np.array([113.1, 113.2, 113.3])
    y = np.array([22.1, 22.2, 22.3])
    index = cl._PointIndex(x, y)
    far = box(120.0, 30.0, 121.0, 31.0)  # no candidate in x
    beside = box(113.15, 25.0, 113.25, 26.0)  # candidates in x, none in y
    for geom in (far, beside, shapely.Polygon(), None):
        got = index.inside(geom)
        assert got.shape == (0,) and got.dtype == np.intp


def test_point_index_keeps_original_positions() -> None:
    # unsorted x: positions returned are the caller's rows, not the sorted ranks
    x = np.array([113.9, 113.1, np.nan, 113.5, 113.52])
    y = np.array([22.5, 22.5, 22.5, 22.5, 22.5])
    index = cl._PointIndex(x, y)
    assert sorted(index.inside(box(113.4, 22.4, 113.6, 22.6)).tolist()) == [3, 4]
    assert index.inside(box(113.8, 22.4, 114.0, 22.6)).tolist() == [0]


# ------------------------------------------------------------------ _utm_for / band
@pytest.mark.parametrize(
    "lon, lat, epsg",
    [
        (113.3, 22.5, 32649),  # Guangzhou: zone 49 (108°E-114°E)
        (114.05, 22.55, 32650),  # Shenzhen east of 114°E: zone 50
        (110.4, 21.2, 32649),  # Zhanjiang
        (-0.5, -10.0, 32730),  # south of the equator, zone 30
        (3.0, 0.0, 32631),  # equator counts as north
    ],
)
def test_utm_zone_of_a_geometry(lon: float, lat: float, epsg: int) -> None:
    geom = box(lon - 0.01, lat - 0.01, lon + 0.01, lat + 0.01)
    assert cl._utm_for(geom).to_epsg() == epsg


def test_utm_zone_uses_the_centre_of_the_bounds() -> None:
    # bounds 113.9..114.3: centre 114.1 is zone 50; the west edge alone would say 49
    assert cl._utm_for(box(113.9, 22.0, 114.3, 22.2)).to_epsg() == 32650
    # centre latitude -0.1 (south) though the north edge is north of the equator
    assert cl._utm_for(box(3.0, -0.3, 3.2, 0.1)).to_epsg() == 32731


def test_boundary_band_is_the_distance_band() -> None:
    poly = box(113.2, 22.2, 113.7, 22.6)
    band = cl._boundary_band(poly, 500.0)
    metric = 32649
    edge = gpd.GeoSeries([poly.boundary], crs=4326).to_crs(metric).iloc[0]
    rng = np.random.default_rng(5)
    pts = gpd.GeoSeries(
        gpd.points_from_xy(rng.uniform(113.17, 113.73, 4000), rng.uniform(22.17, 22.63, 4000)),
        crs=4326,
    )
    dist = pts.to_crs(metric).distance(edge).to_numpy()
    inside = shapely.contains_xy(band, pts.x.to_numpy(), pts.y.to_numpy())
    clear = np.abs(dist - 500.0) > 25.0  # straight band edges reprojected: 5 % slack
    np.testing.assert_array_equal(inside[clear], (dist < 500.0)[clear])
    assert inside.sum() > 100 and (~inside).sum() > 100


@pytest.mark.parametrize("geom, dist", [(box(0, 0, 1, 1), 0.0), (box(0, 0, 1, 1), -5.0),
                                        (shapely.Polygon(), 100.0), (None, 100.0)])
def test_boundary_band_of_nothing_is_none(geom, dist) -> None:
    assert cl._boundary_band(geom, dist) is None


# ------------------------------------------------------------------ layer helpers
def test_layer_accuracy_column_coerces_bad_values_to_zero() -> None:
    frame = gpd.GeoDataFrame({"id": ["a", "b", "c"], "accuracy_m": [250, "x", None]},
                             geometry=[box(0, 0, 1, 1)] * 3, crs=4326)
    np.testing.assert_array_equal(cl._layer_accuracy("basin", frame), [250.0, 0.0, 0.0])


def test_layer_accuracy_falls_back_to_the_group_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    from layers import registry

    class Info:
        def __init__(self, acc):
            self.provenance = type("P", (), {"accuracy_m": acc})()

    known = {"p7": Info(30.0), "parks": Info(120.0), "basins": Info(None)}

    def layer_info(lid: str):
        if lid not in known:
            raise LookupError(lid)
        return known[lid]

    monkeypatch.setattr(registry, "layer_info", layer_info)
    frame = gpd.GeoDataFrame({"id": ["p7", "unknown"]}, geometry=[box(0, 0, 1, 1)] * 2,
                             crs=4326)
    np.testing.assert_array_equal(cl._layer_accuracy("park", frame), [30.0, 120.0])
    # the row's own id wins; a group layer whose accuracy is not stated gives 0, no error
    np.testing.assert_array_equal(cl._layer_accuracy("basin", frame), [30.0, 0.0])


def test_checked_refuses_non_frames_and_names_missing_columns() -> None:
    with pytest.raises(ReferenceDataError, match="'basin' is not a GeoDataFrame"):
        cl._checked("basin", pd.DataFrame({"id": ["a"]}))
    d = gpd.GeoDataFrame({"code": ["1"], "name_zh": ["x"]}, geometry=[box(0, 0, 1, 1)], crs=4326)
    with pytest.raises(ReferenceDataError, match=r"lacks columns \['city_code', 'city_zh'\]"):
        cl._checked("district", d)
    with pytest.raises(ReferenceDataError, match=r"'park' lacks columns \['id'\]"):
        cl._checked("park", d)
    ok = gpd.GeoDataFrame({"id": ["a", "b"]}, geometry=[box(0, 0, 1, 1)] * 2, crs=4326,
                          index=[7, 3])
    assert list(cl._checked("park", ok).index) == [0, 1]


def test_overlap_groups_are_a_partition_without_overlaps() -> None:
    rng = np.random.default_rng(11)
    lo = rng.uniform(0, 10, (40, 2))
    geoms = np.array([box(a, b, a + rng.uniform(0.5, 3), b + rng.uniform(0.5, 3))
                      for a, b in lo] + [None, shapely.Polygon()], dtype=object)
    groups = cl._overlap_groups(geoms)
    allpos = np.sort(np.concatenate(groups))
    np.testing.assert_array_equal(allpos, np.arange(len(geoms)))  # each exactly once
    assert {40, 41} <= set(groups[0].tolist())  # missing/empty go to the first group
    for g in groups:
        real = [k for k in g if k < 40]
        for a in real:
            for b in real:
                if a < b:  # second method: pairwise shapely overlap of interiors
                    assert not shapely.relate_pattern(geoms[a], geoms[b], "T********")
    assert len(groups) > 1  # random boxes do overlap


def test_overlap_groups_of_a_chain_need_two_colours() -> None:
    chain = np.array([box(i, 0, i + 1.5, 1) for i in range(5)], dtype=object)
    groups = cl._overlap_groups(chain)
    assert [g.tolist() for g in groups] == [[0, 2, 4], [1, 3]]
    touching = np.array([box(i, 0, i + 1, 1) for i in range(4)], dtype=object)
    assert [g.tolist() for g in cl._overlap_groups(touching)] == [[0, 1, 2, 3]]
    assert [g.tolist() for g in cl._overlap_groups(np.array([], dtype=object))] == [[]]
    pair = np.array([box(0, 0, 2, 2), box(1, 1, 3, 3)], dtype=object)  # just two overlap
    assert [g.tolist() for g in cl._overlap_groups(pair)] == [[0], [1]]


def test_take_str_maps_minus_one_to_empty() -> None:
    out = cl._take_str(["甲", "乙", 3], np.array([1, -1, 0, 2]))
    assert list(out) == ["乙", "", "甲", "3"]


def test_straddle_matrix_equals_unpruned_relate() -> None:
    rng = np.random.default_rng(7)
    units = np.array([box(a, b, a + 1.0, b + 1.0) for a, b in rng.uniform(0, 6, (25, 2))]
                     + [box(2, 2, 3, 3)], dtype=object)
    polys = np.array([box(a, b, a + 2.0, b + 2.0) for a, b in rng.uniform(0, 6, (8, 2))]
                     + [box(3, 2, 4, 3), box(0, 3, 2, 5)], dtype=object)  # bbox edge touches
    ii, ie = cl._straddle_matrix(units, polys)
    assert ii.dtype == bool and ie.dtype == bool
    want_ii = shapely.relate_pattern(units[:, None], polys[None, :], "T********")
    want_ie = shapely.relate_pattern(units[:, None], polys[None, :], "**T******")
    np.testing.assert_array_equal(ii, want_ii)
    np.testing.assert_array_equal(ie, want_ie)
    assert want_ii.any() and (~want_ie).any() is not None
    one_ii, one_ie = cl._straddle_matrix(units[:1], polys)  # a single unit is not skipped
    np.testing.assert_array_equal(one_ii, want_ii[:1])
    np.testing.assert_array_equal(one_ie, want_ie[:1])


def test_straddle_matrix_of_nothing() -> None:
    ii, ie = cl._straddle_matrix(np.array([], dtype=object), np.array([box(0, 0, 1, 1)]))
    assert ii.shape == (0, 1) and ie.shape == (0, 1)
    ii, ie = cl._straddle_matrix(np.array([box(0, 0, 1, 1)]), np.array([], dtype=object))
    assert ii.shape == (1, 0)


@pytest.mark.parametrize("values, want", [
    (["", "无", "否", "-", "/", "—", " None ", "NO", "n/a", "nan", "False", "0"], [False] * 12),
    (["潮南印染中心", "1", "yes", " 园区 "], [True] * 4),
    ([None, "园区", np.nan], [False, True, False]),
])
def test_park_claimed_truth_table(values: list, want: list[bool]) -> None:
    frame = pd.DataFrame({"park_claimed": pd.Series(values, dtype=object)})
    assert cl._park_claimed(frame).tolist() == want


def test_park_claimed_boolean_column_and_absent_column() -> None:
    frame = pd.DataFrame({"park_claimed": pd.array([True, False, None], dtype="boolean")})
    assert cl._park_claimed(frame).tolist() == [True, False, False]
    assert cl._park_claimed(pd.DataFrame(index=range(2))).tolist() == [False, False]


# ------------------------------------------------------------------ cache
def _park_frame(x: float, acc: float = 10.0) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"id": ["p"], "accuracy_m": [acc]},
                            geometry=[box(x, 22.0, x + 0.1, 22.1)], crs=4326)


def test_fingerprint_follows_coordinates_and_accuracy() -> None:
    a = cl._fingerprint("park", _park_frame(113.0), exact=True)
    assert a == cl._fingerprint("park", _park_frame(113.0), exact=True)
    assert a != cl._fingerprint("park", _park_frame(113.0, acc=20.0), exact=True)
    # same bounds and vertex count, one vertex moved inside: only the exact hash sees it
    p = _park_frame(113.0)
    q = p.copy()
    q.geometry = [shapely.Polygon([(113.0, 22.0), (113.1, 22.0), (113.1, 22.1), (113.05, 22.1),
                                   (113.0, 22.1)])]
    p.geometry = [shapely.Polygon([(113.0, 22.0), (113.1, 22.0), (113.1, 22.1), (113.02, 22.1),
                                   (113.0, 22.1)])]
    assert cl._fingerprint("park", p, exact=False) == cl._fingerprint("park", q, exact=False)
    assert cl._fingerprint("park", p, exact=True) != cl._fingerprint("park", q, exact=True)


def test_injected_index_cache_keeps_the_most_recent() -> None:
    frames = [_park_frame(100.0 + k) for k in range(cl._CACHE_SIZE + 3)]
    first = cl._kind_index("park", frames[0], from_registry=False)
    assert cl._kind_index("park", frames[0], from_registry=False) is first  # cache hit
    for f in frames[1:]:
        cl._kind_index("park", f, from_registry=False)
    assert len(cl._index_cache) == cl._CACHE_SIZE
    assert cl._kind_index("park", frames[0], from_registry=False) is not first  # evicted
    last = cl._kind_index("park", frames[-1], from_registry=False)
    assert cl._kind_index("park", frames[-1], from_registry=False) is last
    # a touched entry moves to the end: it survives the next insertions
    keep = frames[5]
    kept = cl._kind_index("park", keep, from_registry=False)
    for k in range(3):
        cl._kind_index("park", _park_frame(50.0 + k), from_registry=False)
    assert cl._kind_index("park", keep, from_registry=False) is kept


def test_registry_entries_are_never_evicted() -> None:
    reg = cl._kind_index("park", _park_frame(10.0), from_registry=True)
    for k in range(cl._CACHE_SIZE + 2):
        cl._kind_index("park", _park_frame(20.0 + k), from_registry=False)
    assert cl._kind_index("park", _park_frame(10.0), from_registry=True) is reg


# ------------------------------------------------------------------ classify() edges
def test_classify_refuses_non_frames_and_non_points() -> None:
    with pytest.raises(TypeError, match="needs a GeoDataFrame"):
        cl.classify(pd.DataFrame({"x": [1]}))
    lines = gpd.GeoDataFrame(geometry=[shapely.LineString([(113, 22), (113.1, 22.1)])],
                             crs=4326)
    with pytest.raises(TypeError, match="needs point geometry"):
        cl.classify(lines)


def test_layer_index_assign_and_covers_any_against_contains_xy() -> None:
    geoms = np.array([box(0, 0, 2, 2), box(1, 1, 3, 3), box(1.5, 0, 2.5, 1.2), None],
                     dtype=object)
    index = cl._LayerIndex.build(geoms)
    rng = np.random.default_rng(2)
    x, y = rng.uniform(-0.5, 3.5, 5000), rng.uniform(-0.5, 3.5, 5000)
    hits = np.stack([shapely.contains_xy(g, x, y) if g is not None else np.zeros(len(x), bool)
                     for g in geoms])
    want_which = np.where(hits.any(axis=0), hits.argmax(axis=0), -1)
    which, multi = index.assign(x, y)
    np.testing.assert_array_equal(which, want_which)
    np.testing.assert_array_equal(multi, hits.sum(axis=0) > 1)
    np.testing.assert_array_equal(index.covers_any(x, y), hits.any(axis=0))
    assert index.size == 4 and multi.any()


def test_review_reasons_are_joined_in_the_declared_order() -> None:
    layers = {
        "district": gpd.GeoDataFrame({"code": ["1"], "name_zh": ["甲"], "city_code": ["9"],
                                      "city_zh": ["市"]}, geometry=[box(113, 22, 114, 23)],
                                     crs=4326),
        "basin": gpd.GeoDataFrame({"id": ["b"], "accuracy_m": [1000.0]},
                                  geometry=[box(113.2, 22.2, 113.6, 22.6)], crs=4326),
        "region": gpd.GeoDataFrame({"id": ["r"], "accuracy_m": [0.0]},
                                   geometry=[box(113.7, 22.7, 113.9, 22.9)], crs=4326),
        "park": gpd.GeoDataFrame({"id": ["p"], "accuracy_m": [0.0]},
                                 geometry=[box(113.8, 22.1, 113.9, 22.2)], crs=4326),
    }
    # on the basin's west edge (within 1000 m), claiming a park it is not in
    pts = gpd.GeoDataFrame({"park_claimed": ["某园区", ""]},
                           geometry=[Point(113.2001, 22.4), Point(113.4, 22.4)], crs=4326)
    out = cl.classify(pts, layers=layers)
    assert list(out["review_reasons"]) == ["near_basin_boundary;park_claim_unverified", ""]
    assert list(out["needs_review"]) == [True, False]
    assert list(out["basin_id"]) == ["b", "b"]
