"""In-database classification (PostGIS) against the in-process engine, and the SQL rules."""

from __future__ import annotations

import tempfile
from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from sqlalchemy import Boolean, Float, Text, column, select, table, text
from sqlalchemy.dialects import postgresql

from api.store import _sql_rules
from api.store.base import FeatureQuery
from api.store.postgis import PostGISStore
from api.testing import make_enterprises
from layers.catalog import AnyOf, Predicate, rules

COMPARED = ("city", "district", "district_code", "basin_id", "region_id", "park_id",
            "verdict", "standards", "rule_ids", "reasons")
AS_OF = date(2020, 6, 1)


# --------------------------------------------------------------------------- no server needed
def test_rule_sql_binds_every_catalog_value() -> None:
    cols = {"industry_id": column("industry_id", Text), "basin_id": column("basin_id", Text),
            "coal_boiler_tph": column("coal_boiler_tph", Float)}
    rule = next(r for r in rules().rules if r.id == "paper_basin_standard_lianjiang")
    compiled = _sql_rules.rule_sql(rule, cols, ["paper", "dyeing"]).compile(
        dialect=postgresql.dialect()
    )
    sql = str(compiled)
    assert "lianjiang" not in sql and "paper" not in sql  # values are parameters
    assert "lianjiang" in compiled.params.values()


def test_predicate_on_absent_field_is_false() -> None:
    expr = _sql_rules.condition_sql(
        AnyOf(any=[Predicate(field="no_such_field", op="eq", value="x")]), {}
    )
    assert "false" in str(expr.compile(dialect=postgresql.dialect())).lower()


# --------------------------------------------------------------------------- PostGIS
@pytest.fixture(scope="module")
def pipeline_result() -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """A few thousand synthetic enterprises through the in-process engine."""
    from geo.pipeline import run_pipeline
    from geo.synthetic import synthetic_registry, write_registry

    reg = synthetic_registry(3000, seed=11)
    with tempfile.TemporaryDirectory() as d:
        res = run_pipeline(write_registry(reg, Path(d) / "registry.csv"), as_of=AS_OF)
    return res.enterprises, reg


#: Run with the conftest ``store`` fixture on PostGIS only.
ON_POSTGIS = pytest.mark.parametrize(
    "store", [pytest.param("postgis", marks=pytest.mark.postgis)], indirect=True
)


def _blank(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = frame.copy()
    for c in COMPARED:
        out[c] = ""
    out["verdict"] = "no_action"
    return out


@ON_POSTGIS
def test_in_database_classification_equals_in_process(
    store: PostGISStore, pipeline_result: tuple[gpd.GeoDataFrame, pd.DataFrame]
) -> None:
    expected, reg = pipeline_result
    store.load_enterprises(_blank(expected), loaded_by="test", source_name="synthetic.csv",
                           source_sha256="0" * 64)
    # the registry's optional boiler capacity, as an attribute column of the stored list
    boiler = pd.to_numeric(reg["燃煤锅炉蒸吨"], errors="coerce").to_numpy()
    tph = boiler[expected["row"].to_numpy() - 2]
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE enterprises ADD COLUMN coal_boiler_tph float8"))
        conn.execute(
            text("UPDATE enterprises e SET coal_boiler_tph = v.x "
                 "FROM unnest(CAST(:fid AS bigint[]), CAST(:x AS float8[])) AS v(fid, x) "
                 "WHERE e.fid = v.fid"),
            {"fid": list(range(1, len(tph) + 1)),
             "x": [None if np.isnan(v) else float(v) for v in tph]},
        )
    counts = store.load_reference_layers()
    assert counts["basin"] >= 4 and counts["district"] > 100
    assert store.classify_in_database(as_of=AS_OF) == len(expected)

    got = store.query(FeatureQuery()).features.sort_values("fid").reset_index(drop=True)
    assert len(got) == len(expected)
    assert (got["row"].to_numpy() == expected["row"].to_numpy()).all()
    for c in COMPARED:
        diff = np.flatnonzero(got[c].astype(str).to_numpy() != expected[c].astype(str).to_numpy())
        assert diff.size == 0, (c, got.loc[diff[:3], c].tolist(), expected.loc[diff[:3], c].tolist())
    # the comparison covers every verdict the synthetic data produces, incl. boiler rules
    assert {"shutdown", "rectify", "basin_standard", "priority_supervision"} <= set(got["verdict"])


@ON_POSTGIS
def test_sql_predicates_follow_in_process_semantics(store: PostGISStore) -> None:
    """Trimming, NULL/NaN, numbers in text, booleans: SQL masks equal geo.rules masks."""
    from geo.rules import _Columns, _predicate_mask

    df = pd.DataFrame({
        "t": [" 5 ", "x", "", "7.5", "1e1", None],
        "f": [1.0, np.nan, 0.0, 65.0, -3.0, 2.0],
        "b": [True, False, True, False, True, False],
    })
    preds = [
        Predicate(field="t", op="eq", value="x"), Predicate(field="t", op="eq", value=5),
        Predicate(field="t", op="gt", value=6), Predicate(field="t", op="is_empty"),
        Predicate(field="t", op="not_empty"), Predicate(field="t", op="ne", value="x"),
        Predicate(field="f", op="lt", value=65), Predicate(field="f", op="not_in", value=[0, 2]),
        Predicate(field="f", op="not_empty"), Predicate(field="b", op="eq", value=True),
        Predicate(field="b", op="ne", value=1),
    ]
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE p (i int, t text, f float8, b boolean)"))
        conn.execute(text("INSERT INTO p VALUES (:i, :t, CAST(:f AS float8), :b)"), [
            {"i": i, "t": r.t if isinstance(r.t, str) else None, "f": "NaN" if np.isnan(r.f) else r.f, "b": bool(r.b)}
            for i, r in enumerate(df.itertuples())
        ])
        p = table("p", column("i"), column("t", Text), column("f", Float), column("b", Boolean))
        cols = {"t": p.c.t, "f": p.c.f, "b": p.c.b}
        for pred in preds:
            sql_mask = [bool(v) for v in conn.execute(
                select(_sql_rules.condition_sql(pred, cols)).order_by(p.c.i)).scalars()]
            want = _predicate_mask(_Columns(df), pred).tolist()
            assert sql_mask == want, pred


@ON_POSTGIS
def test_classify_needs_reference_tables(store: PostGISStore) -> None:
    from geo.errors import InvalidQueryError

    store.load_enterprises(make_enterprises(), loaded_by="t", source_name="s.csv",
                           source_sha256="1" * 64)
    with pytest.raises(InvalidQueryError, match="load_reference_layers"):
        store.classify_in_database()


@ON_POSTGIS
def test_first_polygon_wins_and_boundary_is_outside(store: PostGISStore) -> None:
    """Tiny inline layers: overlapping basins -> the first in layer order; edge -> none."""
    square = shapely.box(0, 0, 10, 10)
    layers = {
        "district": gpd.GeoDataFrame(
            {"code": ["1"], "name_zh": ["甲区"], "city_code": ["9"], "city_zh": ["乙市"]},
            geometry=[square], crs=4326),
        "basin": gpd.GeoDataFrame({"id": ["late", "early"]},
                                  geometry=[shapely.box(0, 0, 6, 6), shapely.box(4, 4, 10, 10)],
                                  crs=4326),
        "region": gpd.GeoDataFrame({"id": ["r"]}, geometry=[shapely.box(0, 0, 1, 1)], crs=4326),
        "park": gpd.GeoDataFrame({"id": ["p"]}, geometry=[shapely.box(8, 8, 9, 9)], crs=4326),
    }
    pts = [(5, 5), (2, 2), (8.5, 8.5), (6, 2)]  # overlap, basin 0 only, park, basin edge
    ent = make_enterprises()
    ent = ent.iloc[[0] * len(pts)].reset_index(drop=True)
    ent = ent.set_geometry(gpd.points_from_xy(*zip(*pts, strict=True)), crs=4326)
    ent["lon"], ent["lat"] = ent.geometry.x, ent.geometry.y
    store.load_enterprises(ent, loaded_by="t", source_name="s.csv", source_sha256="2" * 64)
    store.load_reference_layers(layers)
    store.classify_in_database(as_of=AS_OF)
    got = store.query(FeatureQuery()).features.sort_values("fid")

    from geo.classify import classify

    want = classify(ent[["geometry"]].copy(), layers=layers)
    assert got["basin_id"].tolist() == want["basin_id"].tolist()
    assert got["park_id"].tolist() == want["park_id"].tolist()
    assert got["basin_id"].tolist()[0] == "late" and got["basin_id"].tolist()[3] == ""
    assert set(got["city"]) == {"乙市"}
