"""Tests for geo.classify on tiny inline polygons."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point, Polygon, box

from geo.classify import REVIEW_REASONS, classify
from geo.errors import CRSMismatchError
from geo.schema import CLASSIFY_COLUMNS, ISSUE_SEP

# Two cities, three districts side by side along lon 113.0-114.5, lat 22.0-23.0.
# The basin spans the A|B district border; the park sits inside the basin.
DEG_M = 111_320 * np.cos(np.radians(22.4))  # metres per degree of longitude at lat 22.4
BASIN_ACC, REGION_ACC, PARK_ACC = 1000.0, 500.0, 100.0


def _gdf(data: dict, geoms: list, crs: str | None = "EPSG:4326") -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(data, geometry=geoms, crs=crs)


@pytest.fixture(autouse=True)
def _cold_injected_indexes():
    """Indexes of injected frames and boundary bands built afresh in every test.

    The module caches them by content, so without this a test would reuse the index an
    earlier test (or an earlier mutant run in the same process) built, and a regression in
    the build path (overlap groups, bands, UTM zone) would go unseen. Registry layers stay
    cached: rebuilding them costs seconds per test and their path is tested separately.
    """
    import geo.classify as cl

    def clear() -> None:
        cl._boundary_band.cache_clear()
        with cl._cache_lock:
            for key in [k for k in cl._index_cache if not k[1]]:
                del cl._index_cache[key]

    clear()
    yield
    clear()


@pytest.fixture
def layers() -> dict[str, gpd.GeoDataFrame]:
    return {
        "district": _gdf(
            {
                "code": ["440301", "441901", "441902"],
                "name_zh": ["甲区", "乙区", "丙区"],
                "city_code": ["440300", "441900", "441900"],
                "city_zh": ["深圳市", "东莞市", "东莞市"],
            },
            [box(x, 22.0, x + 0.5, 23.0) for x in (113.0, 113.5, 114.0)],
        ),
        "basin": _gdf(
            {"id": ["maozhou"], "name_zh": ["茅洲河流域"], "accuracy_m": [BASIN_ACC]},
            [box(113.2, 22.2, 113.7, 22.6)],
        ),
        "region": _gdf(
            {"id": ["guangfo"], "name_zh": ["广佛跨界"], "accuracy_m": [REGION_ACC]},
            [box(113.0, 22.7, 113.3, 23.0)],
        ),
        "park": _gdf(
            {"id": ["p1"], "name_zh": ["园区"], "accuracy_m": [PARK_ACC]},
            [box(113.3, 22.3, 113.35, 22.35)],
        ),
    }


def _points(xy: list[tuple[float, float]], **cols: list) -> gpd.GeoDataFrame:
    return _gdf(dict(cols), [Point(x, y) for x, y in xy])


def _reasons(s: str) -> set[str]:
    return {r for r in s.split(ISSUE_SEP) if r}


def test_inside_outside_and_no_district(layers: dict) -> None:
    pts = _points(
        [(113.45, 22.4), (113.325, 22.325), (113.1, 22.85), (113.9, 22.9), (115.0, 24.0)],
        name=list("abcde"),
    )
    out = classify(pts, layers=layers)
    assert all(c in out.columns for c in CLASSIFY_COLUMNS)
    assert list(out["name"]) == list("abcde")  # input columns and order kept
    assert list(out["district"]) == ["甲区", "甲区", "甲区", "乙区", ""]
    assert list(out["district_code"]) == ["440301", "440301", "440301", "441901", ""]
    assert list(out["city"]) == ["深圳市", "深圳市", "深圳市", "东莞市", ""]
    assert list(out["basin_id"]) == ["maozhou", "maozhou", "", "", ""]
    assert list(out["park_id"]) == ["", "p1", "", "", ""]
    assert list(out["region_id"]) == ["", "", "guangfo", "", ""]
    assert not out["needs_review"].any()
    assert (out["review_reasons"] == "").all()


def test_boundary_band_uses_layer_accuracy(layers: dict) -> None:
    west = 113.2  # basin's west edge, far from its other edges
    offsets_m = [0.5 * BASIN_ACC, -0.5 * BASIN_ACC, 2 * BASIN_ACC, -2 * BASIN_ACC]
    pts = _points([(west + d / DEG_M, 22.4) for d in offsets_m])
    out = classify(pts, layers=layers)
    inside = [d > 0 for d in offsets_m]
    near = [abs(d) < BASIN_ACC for d in offsets_m]
    assert list(out["basin_id"] == "maozhou") == inside
    assert [("near_basin_boundary" in _reasons(r)) for r in out["review_reasons"]] == near
    assert list(out["needs_review"]) == near


def test_park_band_and_unverified_claim(layers: dict) -> None:
    east = 113.35
    pts = _points(
        [
            (east - 0.5 * PARK_ACC / DEG_M, 22.325),
            (113.325, 22.325),
            (113.45, 22.45),
            (113.45, 22.5),
        ],
        park_claimed=["", "潮南印染中心", "潮南印染中心", "无"],
    )
    out = classify(pts, layers=layers)
    r = [_reasons(s) for s in out["review_reasons"]]
    assert "near_park_boundary" in r[0] and out["park_id"].iloc[0] == "p1"
    assert "park_claim_unverified" not in r[1]  # claim backed by the polygon
    assert "park_claim_unverified" in r[2]  # claim, but no park polygon there
    assert r[3] == set()


def test_overlapping_polygons_flagged(layers: dict) -> None:
    layers["basin"] = pd.concat(
        [layers["basin"], _gdf({"id": ["shima"], "name_zh": ["石马河"], "accuracy_m": [0.0]},
                               [box(113.4, 22.3, 113.6, 22.5)])],
        ignore_index=True,
    )
    out = classify(_points([(113.45, 22.4), (113.3, 22.4)]), layers=layers)
    assert list(out["basin_id"]) == ["maozhou", "maozhou"]  # first polygon in layer order
    assert "multiple_basins" in _reasons(out["review_reasons"].iloc[0])
    assert "multiple_basins" not in _reasons(out["review_reasons"].iloc[1])


def test_coarse_geocode_straddles(layers: dict) -> None:
    # A and B both straddle the basin; C does not touch it.
    xy = [(113.1, 22.1), (113.1, 22.1), (114.2, 22.9), (114.2, 22.9), (114.2, 22.9), (114.2, 22.9)]
    pts = _points(
        xy,
        geocode_precision=["district", "coordinates", "district", "district", "city", "city"],
        geocode_unit_code=["", "", "", "440301", "", "440300"],
    )
    out = classify(pts, layers=layers)
    flag = ["coarse_geocode_straddles_basin" in _reasons(s) for s in out["review_reasons"]]
    # 0: district A straddles; 1: precise; 2: district C clear; 3: unit code says A;
    # 4: city 东莞 (B+C) straddles through B; 5: unit code 深圳 straddles
    assert flag == [True, False, False, True, True, True]
    assert "coarse_geocode_straddles_park" not in _reasons(out["review_reasons"].iloc[2])


def test_town_geocode_uses_radius(layers: dict) -> None:
    d = 2000.0  # metres east of the basin's west edge
    pts = _points(
        [(113.2 + d / DEG_M, 22.4)] * 3,
        geocode_precision=["town", "town", "coordinates"],
        geocode_accuracy_m=[3 * d, d / 2, 3 * d],
    )
    out = classify(pts, layers=layers)
    flag = ["coarse_geocode_straddles_basin" in _reasons(s) for s in out["review_reasons"]]
    assert flag == [True, False, False]


def test_crs_must_be_wgs84(layers: dict) -> None:
    pts = _points([(113.45, 22.4)])
    with pytest.raises(CRSMismatchError, match="set_crs"):
        classify(pts.set_crs(None, allow_override=True), layers=layers)
    with pytest.raises(CRSMismatchError, match="to_crs"):
        classify(pts.to_crs(3857), layers=layers)
    bad = dict(layers, basin=layers["basin"].to_crs(32649))
    with pytest.raises(CRSMismatchError, match="basin"):
        classify(pts, layers=bad)


def test_empty_and_null_geometry(layers: dict) -> None:
    out = classify(_points([]), layers=layers)
    assert len(out) == 0 and all(c in out.columns for c in CLASSIFY_COLUMNS)
    pts = _gdf({"n": [1, 2]}, [None, Point(113.45, 22.4)])
    out = classify(pts, layers=layers)
    assert list(out["district"]) == ["", "甲区"]


def test_review_reason_codes_are_known(layers: dict) -> None:
    rng = np.random.default_rng(3)
    pts = _points(list(zip(rng.uniform(113, 114.5, 500), rng.uniform(22, 23, 500), strict=True)))
    out = classify(pts, layers=layers)
    seen = set().union(*(_reasons(s) for s in out["review_reasons"]))
    assert seen <= set(REVIEW_REASONS)
    assert (out["needs_review"] == (out["review_reasons"] != "")).all()


@pytest.mark.slow  # real layers, 200k points: left out of mutation runs
def test_matches_sjoin_on_200k_random_points() -> None:
    rng = np.random.default_rng(42)
    centres = [(113.2, 22.3), (113.6, 22.6), (113.9, 22.2), (113.3, 22.8)]
    districts = _gdf(
        {
            "code": [f"4403{i:02d}" for i in range(4)],
            "name_zh": [f"区{i}" for i in range(4)],
            "city_code": ["440300", "440300", "441900", "441900"],
            "city_zh": ["深圳市", "深圳市", "东莞市", "东莞市"],
        },
        # non-overlapping irregular polygons: Voronoi-like cells clipped to a frame
        list(
            shapely.get_parts(
                shapely.voronoi_polygons(
                    shapely.MultiPoint(centres), extend_to=box(112.9, 21.9, 114.1, 23.1)
                )
            )
        ),
    )
    districts["geometry"] = districts.geometry.intersection(box(113.0, 22.0, 114.0, 23.0))
    concave = Polygon([(113.1, 22.1), (113.8, 22.1), (113.8, 22.9), (113.5, 22.4), (113.1, 22.9)])
    basins = _gdf({"id": ["a", "b"], "name_zh": ["甲", "乙"], "accuracy_m": [0.0, 0.0]},
                  [concave, Point(113.5, 22.8).buffer(0.1)])
    empty = _gdf({"id": pd.Series([], dtype=str)}, [])
    n = 200_000
    pts = gpd.GeoDataFrame(
        geometry=gpd.points_from_xy(rng.uniform(112.9, 114.1, n), rng.uniform(21.9, 23.1, n)),
        crs="EPSG:4326",
    )
    refs = {"district": districts, "basin": basins, "region": empty, "park": empty}
    out = classify(pts, layers=refs)
    for frame, col, key in ((districts, "district_code", "code"), (basins, "basin_id", "id")):
        j = gpd.sjoin(pts, frame[[key, "geometry"]], predicate="within", how="left")
        j = j[~j.index.duplicated()]
        expected = j[key].fillna("").astype(str).to_numpy()
        assert (out[col].to_numpy() == expected).all(), col
    assert (out["district_code"] != "").sum() > 0.5 * n


def _contains_reference(
    geoms: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Plain contains_xy per polygon in layer order: (first hit, more than one hit)."""
    which = np.full(len(x), -1)
    count = np.zeros(len(x), dtype=int)
    for i, g in enumerate(geoms):
        hit = shapely.contains_xy(g, x, y)
        which[hit & (which < 0)] = i
        count += hit
    return which, count > 1


#: Guangdong-wide Albers equal-area (standard parallels 21 N / 25 N): distance scale within
#: 0.3 % across the province, a metric CRS independent of the engine's per-layer UTM zone.
GD_ALBERS = "+proj=aea +lat_0=0 +lon_0=113.5 +lat_1=21 +lat_2=25 +ellps=WGS84 +units=m"


def _near_boundary_reference(
    geoms: np.ndarray, accuracy_m: np.ndarray, x: np.ndarray, y: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Points closer than the layer accuracy to a polygon's boundary, by shapely distance
    in metres (a second method to the engine's buffered band), and the points within 5 %
    of the accuracy of that distance, where the two methods may fairly differ (the band is
    a 4-segments-per-quarter buffer: up to 1.9 % short of the circle, plus projections)."""
    from pyproj import Transformer

    to_m = Transformer.from_crs("EPSG:4326", GD_ALBERS, always_xy=True)
    px, py = to_m.transform(x, y)
    pts = shapely.points(px, py)
    near = np.zeros(len(x), dtype=bool)
    unsure = np.zeros(len(x), dtype=bool)
    for geom, acc in zip(geoms, accuracy_m):
        if not acc > 0:
            continue
        edge = shapely.transform(shapely.boundary(geom),
                                 lambda c: np.column_stack(to_m.transform(c[:, 0], c[:, 1])))
        x0, y0, x1, y1 = shapely.bounds(edge)
        cand = (px > x0 - 2 * acc) & (px < x1 + 2 * acc) & (py > y0 - 2 * acc) & (py < y1 + 2 * acc)
        dist = shapely.distance(edge, pts[cand])
        near[cand] |= dist < acc
        unsure[cand] |= np.abs(dist - acc) < 0.05 * acc
    return near, unsure


@pytest.mark.slow  # real layers, 200k points: left out of mutation runs
def test_cellindex_path_matches_contains_xy_on_real_layers() -> None:
    from geo.classify import _layer_accuracy  # the layers' accuracy (data), not the band
    from layers import registry

    rng = np.random.default_rng(2019)
    n = 100_000
    # half over the Pearl River Delta and the basins, half over the province's bbox
    x = np.concatenate([rng.uniform(113.0, 115.2, n // 2), rng.uniform(109.65, 117.32, n // 2)])
    y = np.concatenate([rng.uniform(22.2, 23.6, n // 2), rng.uniform(20.21, 25.52, n // 2)])
    pts = gpd.GeoDataFrame(geometry=gpd.points_from_xy(x, y), crs="EPSG:4326")
    out = classify(pts)
    reasons = [_reasons(s) for s in out["review_reasons"]]

    districts = registry.load_group("district")
    which, _ = _contains_reference(districts.geometry.to_numpy(), x, y)
    expected = np.append(districts["code"].astype(str).to_numpy(), "")[which]
    assert (out["district_code"].to_numpy() == expected).all()
    assert (out["district_code"] != "").sum() > 0.3 * n

    for kind, col in (("basin", "basin_id"), ("region", "region_id"), ("park", "park_id")):
        frame = registry.load_group(kind)
        geoms = frame.geometry.to_numpy()
        which, multi = _contains_reference(geoms, x, y)
        expected = np.append(frame["id"].astype(str).to_numpy(), "")[which]
        assert (out[col].to_numpy() == expected).all(), col
        got_multi = np.array([f"multiple_{kind}s" in r for r in reasons])
        assert (got_multi == multi).all(), kind
        near, unsure = _near_boundary_reference(geoms, _layer_accuracy(kind, frame), x, y)
        got_near = np.array([f"near_{kind}_boundary" in r for r in reasons])
        assert (got_near[~unsure] == near[~unsure]).all(), kind
        assert near.sum() > 0 and unsure.sum() < 0.01 * n, kind
    assert (out["basin_id"] != "").sum() > 100  # the test exercises the basins


def test_three_overlapping_polygons_lowest_index_wins(layers: dict) -> None:
    # b overlaps a and c; a and c only touch: two groups, hits counted across them
    layers["basin"] = _gdf(
        {"id": ["a", "b", "c"], "accuracy_m": [0.0, 0.0, 0.0]},
        [box(113.0, 22.0, 113.4, 22.5), box(113.3, 22.0, 113.5, 22.5),
         box(113.4, 22.0, 113.8, 22.5)],
    )
    xy = [(113.1, 22.2), (113.35, 22.2), (113.45, 22.2), (113.6, 22.2), (113.4, 22.2)]
    out = classify(_points(xy), layers=layers)
    assert list(out["basin_id"]) == ["a", "a", "b", "c", "b"]
    multi = ["multiple_basins" in _reasons(s) for s in out["review_reasons"]]
    # (113.4, 22.2) lies on the a|c edge: inside b only
    assert multi == [False, True, True, False, False]


def test_injected_layer_index_follows_content(layers: dict) -> None:
    pts = _points([(113.45, 22.4)])
    assert classify(pts, layers=layers)["basin_id"].iloc[0] == "maozhou"
    moved = dict(layers)
    moved["basin"] = layers["basin"].copy()
    moved["basin"]["geometry"] = [box(113.6, 22.2, 113.7, 22.6)]
    assert classify(pts, layers=moved)["basin_id"].iloc[0] == ""
    assert classify(pts, layers=layers)["basin_id"].iloc[0] == "maozhou"


def test_input_frame_not_modified(layers: dict) -> None:
    pts = _points([(113.45, 22.4)], name=["a"])
    before = pts.copy()
    out = classify(pts, layers=layers)
    out.loc[0, "name"] = "changed"
    assert list(pts.columns) == list(before.columns)
    assert pts["name"].iloc[0] == "a"


def test_registry_index_not_stale_when_layer_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    from layers import registry

    pts = _points([(113.45, 22.4)])
    assert classify(pts)["park_id"].iloc[0] == ""  # no bundled park there
    real = registry.shared_group

    def patched(kind: str) -> gpd.GeoDataFrame:
        if kind != "park":
            return real(kind)
        return _gdf({"id": ["test_park"], "accuracy_m": [0.0]}, [box(113.4, 22.3, 113.5, 22.5)])

    monkeypatch.setattr(registry, "shared_group", patched)
    assert classify(pts)["park_id"].iloc[0] == "test_park"


@pytest.mark.slow  # real layers, 200k points: left out of mutation runs
def test_concurrent_calls_share_the_cached_indexes_safely() -> None:
    """Threads (FastAPI's thread pool, Dask's threaded workers) may classify at once."""
    from concurrent.futures import ThreadPoolExecutor

    from geo.synthetic import sample_points
    from layers.registry import load_group

    districts = load_group("district")
    rng = np.random.default_rng(42)
    x, y = sample_points(districts.geometry.union_all(), 4000, rng)
    pts = gpd.GeoDataFrame(
        {
            "geocode_precision": np.where(rng.random(len(x)) < 0.3, "district", "coordinates"),
            "geocode_unit_code": "",
        },
        geometry=gpd.points_from_xy(x, y),
        crs="EPSG:4326",
    )
    expected = classify(pts)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: classify(pts), range(8)))
    for got in results:
        pd.testing.assert_frame_equal(got.drop(columns="geometry"), expected.drop(columns="geometry"))


def test_classify_point_equals_classify_on_one_row() -> None:
    from geo.classify import classify_point
    from geo.synthetic import sample_points
    from layers.registry import load_group

    basins = load_group("basin").geometry.union_all()
    x, y = sample_points(basins.buffer(0.05), 60, np.random.default_rng(3))  # incl. edges
    for lon, lat in zip(x.tolist(), y.tolist(), strict=True):
        row = classify(_points([(lon, lat)])).iloc[0]
        assert classify_point(lon, lat) == {c: row[c] for c in CLASSIFY_COLUMNS}
