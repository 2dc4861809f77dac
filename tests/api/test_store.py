"""Contract suite of the storage interface, run against every provider."""

from __future__ import annotations

import hashlib

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from api.store import FeatureQuery, Store
from api.store.cql import parse_cql
from geo.errors import InvalidQueryError, RegistryError
from geo.schema import ENFORCEMENT_COLUMNS
from api.testing import make_enterprises


def _load(store: Store, gdf: gpd.GeoDataFrame, who: str = "tester") -> None:
    sha = hashlib.sha256(gdf.to_json().encode()).hexdigest()
    store.load_enterprises(gdf, loaded_by=who, source_name="名录.csv", source_sha256=sha,
                           rejected=2)


def _names(result_frame: gpd.GeoDataFrame) -> list[str]:
    return list(result_frame["name"])


def test_empty_store(store: Store) -> None:
    res = store.query(FeatureQuery())
    assert res.number_matched == 0 and len(res.features) == 0
    assert store.loads() == []
    assert store.extent() is None


def test_round_trip_keeps_every_column(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    _load(store, enterprises)
    got = store.query(FeatureQuery()).features
    assert list(got["fid"]) == list(range(1, len(enterprises) + 1))
    for col in ENFORCEMENT_COLUMNS:
        exp = enterprises[col].tolist()
        assert got[col].tolist() == exp, col
    assert got.crs.to_epsg() == 4326
    assert shapely.equals_exact(got.geometry.values, enterprises.geometry.values, 1e-9).all()
    ext = store.extent()
    assert ext == pytest.approx(tuple(enterprises.total_bounds))


def test_get_by_fid(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    _load(store, enterprises)
    one = store.get(3)
    assert len(one) == 1 and one.iloc[0]["name"] == enterprises.iloc[2]["name"]
    assert len(store.get(999)) == 0


def test_bbox(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    _load(store, enterprises)
    bbox = (116.0, 23.0, 117.0, 24.0)
    expected = enterprises.cx[116.0:117.0, 23.0:24.0]["name"].tolist()
    assert 0 < len(expected) < len(enterprises)
    res = store.query(FeatureQuery(bbox=bbox))
    assert _names(res.features) == expected and res.number_matched == len(expected)


def test_property_filters(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    _load(store, enterprises)
    q = FeatureQuery(properties={"verdict": ["shutdown", "basin_standard"], "industry": ["印染"]})
    exp = enterprises.loc[
        enterprises.verdict.isin(["shutdown", "basin_standard"]) & (enterprises.industry == "印染")
    ]
    assert _names(store.query(q).features) == exp["name"].tolist()
    q2 = FeatureQuery(properties={"needs_review": ["true"]})
    assert _names(store.query(q2).features) == enterprises.loc[enterprises.needs_review, "name"].tolist()


def test_unknown_property_is_a_query_error(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    _load(store, enterprises)
    with pytest.raises(InvalidQueryError, match="colour"):
        store.query(FeatureQuery(properties={"colour": ["red"]}))


def test_paging(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    _load(store, enterprises)
    pages = [store.query(FeatureQuery(limit=4, offset=o)) for o in (0, 4, 8)]
    assert [p.number_matched for p in pages] == [len(enterprises)] * 3
    assert [len(p.features) for p in pages] == [4, len(enterprises) - 4, 0]
    fids = np.concatenate([p.features["fid"].to_numpy() for p in pages])
    assert list(fids) == list(range(1, len(enterprises) + 1))


@pytest.mark.parametrize(
    ("cql", "mask"),
    [
        ("verdict = 'shutdown'", lambda d: d.verdict == "shutdown"),
        ("industry IN ('印染','造纸') AND basin_id = 'lianjiang'",
         lambda d: d.industry.isin(["印染", "造纸"]) & (d.basin_id == "lianjiang")),
        ("name LIKE '%印染%'", lambda d: d.name.str.contains("印染")),
        ("name LIKE '潮南%' OR lat > 22.95", lambda d: d.name.str.startswith("潮南") | (d.lat > 22.95)),
        ("NOT (verdict = 'no_action')", lambda d: d.verdict != "no_action"),
        ("row BETWEEN 3 AND 5", lambda d: d.row.between(3, 5)),
        ("needs_review = true", lambda d: d.needs_review),
        ("S_INTERSECTS(geometry, POLYGON((113 22, 114.5 22, 114.5 23.5, 113 23.5, 113 22)))",
         lambda d: d.lon.between(113, 114.5) & d.lat.between(22, 23.5)),
        ("BBOX(geometry, 116, 23, 117, 24)", lambda d: d.lon.between(116, 117)),
    ],
)
def test_cql2(store: Store, enterprises: gpd.GeoDataFrame, cql: str, mask) -> None:  # noqa: ANN001
    _load(store, enterprises)
    expected = enterprises.loc[mask(enterprises), "name"].tolist()
    assert expected, "fixture must make the filter select something"
    assert _names(store.query(FeatureQuery(cql=parse_cql(cql))).features) == expected


@pytest.mark.parametrize("cql", ["colour = 'red'", "verdict = ", "foo(name) = 1"])
def test_bad_cql(store: Store, enterprises: gpd.GeoDataFrame, cql: str) -> None:
    _load(store, enterprises)
    with pytest.raises(InvalidQueryError, match="filter"):
        store.query(FeatureQuery(cql=parse_cql(cql)))


def test_within_polygon_and_counts(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    _load(store, enterprises)
    poly = shapely.box(116.0, 23.0, 117.0, 24.0)
    inside = enterprises.loc[enterprises.intersects(poly)]
    res = store.query(FeatureQuery(within=poly))
    assert _names(res.features) == inside["name"].tolist()
    by_verdict = store.counts(FeatureQuery(within=poly, limit=1), "verdict")
    assert by_verdict == inside["verdict"].value_counts().to_dict()
    assert sum(store.counts(FeatureQuery(), "industry").values()) == len(enterprises)


def test_within_radius(store: Store) -> None:
    lon0, lat0 = 116.40, 23.20
    deg_per_m = 1 / 111_000  # latitude degrees per metre, roughly
    rows = [
        ("近", "dyeing", "印染", "shutdown", "", "", lon0, lat0 + 500 * deg_per_m),
        ("远", "dyeing", "印染", "shutdown", "", "", lon0, lat0 + 1_500 * deg_per_m),
        ("更远", "paper", "造纸", "no_action", "", "", lon0 + 0.1, lat0),
    ]
    _load(store, make_enterprises(rows))
    assert _names(store.query(FeatureQuery(near=(lon0, lat0, 1_000))).features) == ["近"]
    assert _names(store.query(FeatureQuery(near=(lon0, lat0, 2_000))).features) == ["近", "远"]


def test_loads_are_versioned(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    _load(store, enterprises, who="alice")
    second = enterprises.iloc[:2]
    rec = store.load_enterprises(second, loaded_by="bob", source_name="第二版.xlsx",
                                 source_sha256="ab" * 32, rejected=1)
    loads = store.loads()
    assert [r.loaded_by for r in loads] == ["bob", "alice"]
    assert loads[0] == rec and rec.load_id > loads[1].load_id
    assert (rec.accepted, rec.rejected, rec.source_name) == (2, 1, "第二版.xlsx")
    assert loads[1].accepted == len(enterprises)
    assert loads[1].loaded_at <= rec.loaded_at
    assert store.query(FeatureQuery()).number_matched == 2


def test_failed_load_leaves_previous_data(
    store: Store, enterprises: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    _load(store, enterprises)
    if store.provider == "gpkg":
        import api.store.gpkg as mod

        real = mod.pyogrio.write_dataframe
        calls = []

        def flaky(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            calls.append(kwargs.get("layer"))
            if kwargs.get("layer") == "loads":
                raise OSError("disk full")
            return real(*args, **kwargs)

        monkeypatch.setattr(mod.pyogrio, "write_dataframe", flaky)
    else:
        from api.store.postgis import PostGISStore

        real_chunks = PostGISStore._csv_chunks

        def broken(frame, load_id):  # noqa: ANN001, ANN202
            yield from list(real_chunks(frame, load_id))[:1]
            raise OSError("connection lost mid-COPY")

        monkeypatch.setattr(PostGISStore, "_csv_chunks", staticmethod(broken))
    with pytest.raises(OSError):
        store.load_enterprises(enterprises.iloc[:1], loaded_by="x", source_name="坏.csv",
                               source_sha256="0" * 64)
    monkeypatch.undo()
    assert store.query(FeatureQuery()).number_matched == len(enterprises)
    assert len(store.loads()) == 1
    if store.provider == "gpkg":  # no temporary file left behind
        assert not [p.name for p in store.path.parent.iterdir() if p.name.startswith(".load")]


def test_rejects_wrong_crs_and_missing_columns(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    with pytest.raises(RegistryError, match="EPSG:4326"):
        _load(store, enterprises.to_crs(3857))
    with pytest.raises(RegistryError, match="verdict"):
        _load(store, enterprises.drop(columns=["verdict"]))
    assert store.loads() == []


def test_types_survive(store: Store, enterprises: gpd.GeoDataFrame) -> None:
    _load(store, enterprises)
    got = store.query(FeatureQuery()).features
    assert pd.api.types.is_bool_dtype(got["needs_review"])
    assert pd.api.types.is_integer_dtype(got["row"])
    assert pd.api.types.is_float_dtype(got["lon"])
