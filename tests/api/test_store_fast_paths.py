"""The lean query paths of both stores agree with the general ones.

``counts_many`` and ``points`` (the paths the point lookup and the web map use) must give
what :meth:`Store.counts` and :meth:`Store.query` give; ``warm`` must leave queries intact;
the app's lifespan warms the store before the first request.
"""

from __future__ import annotations

import geopandas as gpd
import numpy as np
from fastapi.testclient import TestClient

from api.app import create_app
from api.settings import Settings
from api.store import FeatureQuery, Store
from api.store.base import FID, POINT_COLUMNS


def _queries(enterprises: gpd.GeoDataFrame) -> list[FeatureQuery]:
    first = enterprises.iloc[0]
    b = enterprises.total_bounds
    return [
        FeatureQuery(),
        FeatureQuery(properties={"district_code": [str(first["district_code"])]}),
        FeatureQuery(properties={"verdict": ["shutdown", "rectify"], "needs_review": ["false"]}),
        FeatureQuery(properties={"basin_id": ["nowhere"]}),
        FeatureQuery(bbox=(b[0], b[1], (b[0] + b[2]) / 2, b[3])),
        FeatureQuery(bbox=(b[0], b[1], b[2], b[3]), properties={"industry_id": ["dyeing"]}),
    ]


def test_counts_many_equals_counts(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    store.warm()
    seen_nonempty = False
    for q in _queries(enterprises):
        many = store.counts_many(q, ("industry", "verdict"))
        for _ in range(2):  # the second answer may come from the memo
            again = store.counts_many(q, ("industry", "verdict"))
            assert again == many
        for col in ("industry", "verdict"):
            assert many[col] == store.counts(q, col)
            n = store.query(q).number_matched
            assert sum(many[col].values()) == n
            seen_nonempty |= n > 0
    assert seen_nonempty


def test_counts_by_district_match_the_frame(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    code = str(enterprises["district_code"].iloc[0])
    got = store.counts_many(FeatureQuery(properties={"district_code": [code]}), ["verdict"])
    want = enterprises.loc[enterprises["district_code"] == code, "verdict"].value_counts()
    assert got["verdict"] == {str(k): int(v) for k, v in want.items()}


def test_points_equal_the_full_query(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    for q in _queries(enterprises):
        full = store.query(q).features
        pts = store.points(q)
        assert list(pts.columns) == list(POINT_COLUMNS)
        assert pts[FID].tolist() == full[FID].tolist()
        np.testing.assert_allclose(pts["lon"].to_numpy(dtype=float), full.geometry.x.to_numpy())
        np.testing.assert_allclose(pts["lat"].to_numpy(dtype=float), full.geometry.y.to_numpy())
        assert pts["verdict"].astype(str).tolist() == full["verdict"].astype(str).tolist()


def test_points_ignore_paging(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    assert len(store.points(FeatureQuery(limit=1, offset=2))) == len(enterprises)


def test_lifespan_warms_the_store(tmp_path, enterprises: gpd.GeoDataFrame) -> None:  # noqa: ANN001
    from api.store.gpkg import GeoPackageStore

    store = GeoPackageStore(tmp_path / "s.gpkg")
    store.init()
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="0")
    reopened = GeoPackageStore(tmp_path / "s.gpkg")
    app = create_app(Settings(data_dir=tmp_path, read_open=True), store=reopened)
    assert reopened._cache is None  # nothing read before start-up
    with TestClient(app) as client:
        assert reopened._cache is not None  # read by the lifespan, before any request
        x, y = enterprises.geometry.x.iloc[0], enterprises.geometry.y.iloc[0]
        body = client.get("/query/point", params={"lon": x, "lat": y}).json()
    code = body["location"]["district_code"]
    want = enterprises.loc[enterprises["district_code"] == code, "industry"].value_counts()
    assert body["district_enterprises"]["industry"] == {str(k): int(v) for k, v in want.items()}


def test_point_features_equal_the_general_geojson(enterprises: gpd.GeoDataFrame) -> None:
    from api.ogc import _features_via_json, features_to_geojson, point_features
    from api.store.base import prepare_enterprises

    frame = prepare_enterprises(enterprises)
    frame.loc[0, "row"] = None  # a missing integer must become null
    frame.loc[1, "lon"] = float("nan")
    assert point_features(frame, FID) == _features_via_json(frame, FID)
    assert features_to_geojson(frame, FID) == _features_via_json(frame, FID)
    assert point_features(frame.iloc[:0], FID) is None
    poly = frame.copy()
    poly.loc[0, "geometry"] = poly.geometry.iloc[0].buffer(0.01)
    assert point_features(poly, FID) is None  # not all points: the general path
    assert features_to_geojson(poly, FID) == _features_via_json(poly, FID)


def test_remembered_counts_follow_a_new_load(store, enterprises: gpd.GeoDataFrame) -> None:  # noqa: ANN001
    from api.store import FeatureQuery

    q = FeatureQuery(properties={"basin_id": ["lianjiang"]})
    store.load_enterprises(enterprises, loaded_by="t", source_name="a.csv", source_sha256="a" * 64)
    first = store.counts_many(q, ("verdict",))
    assert store.counts_many(q, ("verdict",)) == first  # remembered
    fewer = enterprises[enterprises["basin_id"] != "lianjiang"]
    store.load_enterprises(fewer, loaded_by="t", source_name="b.csv", source_sha256="b" * 64)
    assert sum(first["verdict"].values()) > 0
    assert store.counts_many(q, ("verdict",))["verdict"] == {}
