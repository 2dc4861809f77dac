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
from sqlalchemy import Boolean, Date, Float, Text, column, select, table, text
from sqlalchemy.dialects import postgresql

from api.store import _sql_rules
from api.store.base import FeatureQuery
from api.store.postgis import PostGISStore
from api.testing import make_enterprises
from layers.catalog import AnyOf, Predicate, rules

COMPARED = ("city", "district", "district_code", "basin_id", "region_id", "park_id",
            "verdict", "standards", "rule_ids", "reasons", "price_measures", "deadline",
            "deadline_status")
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
#: Enterprise attributes the rules read, stored as columns of the list (SQL type, values).
ATTRIBUTES = {
    "discharge_permit": ("boolean", [True, False, None]),
    "emission_exceedance": ("boolean", [True, False, None, None]),
    "exceedance_severe": ("boolean", [True, None, None]),
    "status": ("text", ["", "operating", "closed"]),
    "quality_result": ("text", ["", "", "pass", "fail"]),
    "quality_recheck": ("text", ["", "pass", "fail"]),
    "quality_deadline": ("date", [None, date(2020, 1, 31), date(2020, 12, 31)]),
    "safety_conditions": ("text", ["", "", "fail"]),
    "products": ("text", ["", "P·C 32.5 复合硅酸盐水泥", "地条钢", "P.O 42.5"]),
}


@pytest.fixture(scope="module")
def pipeline_result() -> gpd.GeoDataFrame:
    """A few thousand synthetic enterprises, with enterprise attributes, classified in process
    (no equipment: every rule that applies has a SQL form)."""
    from geo.pipeline import run_pipeline
    from geo.rules import apply_rules
    from geo.synthetic import synthetic_registry, write_registry

    reg = synthetic_registry(3000, seed=11).drop(columns=["燃煤锅炉蒸吨"])
    with tempfile.TemporaryDirectory() as d:
        res = run_pipeline(write_registry(reg, Path(d) / "registry.csv"), as_of=AS_OF)
    ent = res.enterprises
    rng = np.random.default_rng(3)
    for name, (_t, values) in ATTRIBUTES.items():
        pick = np.asarray(values, dtype=object)[rng.integers(0, len(values), len(ent))]
        ent[name] = pd.array(pick.tolist(), dtype="boolean") if _t == "boolean" else \
            (pd.to_datetime(pick) if _t == "date" else pick)
    return apply_rules(ent, as_of=AS_OF)


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


def _compare(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    assert len(got) == len(expected)
    assert (got["row"].to_numpy() == expected["row"].to_numpy()).all()
    for c in COMPARED:
        diff = np.flatnonzero(got[c].astype(str).to_numpy() != expected[c].astype(str).to_numpy())
        assert diff.size == 0, (c, got.loc[diff[:3], c].tolist(), expected.loc[diff[:3], c].tolist())


@ON_POSTGIS
def test_in_database_classification_equals_in_process(
    store: PostGISStore, pipeline_result: gpd.GeoDataFrame
) -> None:
    expected = pipeline_result
    store.load_enterprises(_blank(expected), loaded_by="test", source_name="synthetic.csv",
                           source_sha256="0" * 64)
    # the attributes as stored by a load (enterprise_attributes), except "products", which
    # is added to the list itself: both kinds of column take part in the SQL rules
    store.store_rule_inputs(expected.drop(columns=["products"]), None)  # no units: all SQL
    with store.engine.begin() as conn:
        conn.execute(text("ALTER TABLE enterprises ADD COLUMN products text"))
        conn.execute(
            text("UPDATE enterprises e SET products = v.x FROM unnest(CAST(:fid AS bigint[]), "
                 "CAST(:x AS text[])) AS v(fid, x) WHERE e.fid = v.fid"),
            {"fid": list(range(1, len(expected) + 1)), "x": expected["products"].tolist()},
        )
    counts = store.load_reference_layers()
    assert counts["basin"] >= 4 and counts["district"] > 100
    assert store.classify_in_database(as_of=AS_OF) == len(expected)
    got = store.query(FeatureQuery()).features.sort_values("fid").reset_index(drop=True)
    _compare(got, expected.reset_index(drop=True))
    # the comparison covers what it is about: every verdict and deadline status, contains,
    # unless, date deadlines and @as_of
    assert {"shutdown", "rectify", "basin_standard", "emission_standard",
            "priority_supervision", "no_action"} <= set(got["verdict"])
    assert {"immediate", "pending", "overdue", "undetermined"} <= set(got["deadline_status"])
    ids = ";".join(got["rule_ids"])
    for rid in ("cement_32_5_composite_cement", "steel_ditiaogang_product",
                "over_standard_discharge_severe", "quality_deadline_passed_recheck_missing"):
        assert rid in ids, rid


@ON_POSTGIS
def test_match_words_equal_each_rule_alone(store: PostGISStore) -> None:
    """The packed match words (a CASE on the industry, 62 rules per bigint) answer what
    each rule's own expression answers, across more than one word."""
    active = _sql_rules.active_rules(rules(), AS_OF)
    many = (active * 3)[:70]  # 70 rules: two words, the second one partly filled
    assert len(many) > _sql_rules.WORD_BITS
    values = [("paper", "lianjiang", "fail"), ("dyeing", "maozhou", ""), ("steel", "", "fail"),
              (" paper ", "shima", "pass"), ("unknown", "lianjiang", "fail"), ("", "", "")]
    src = text("SELECT * FROM (VALUES " + ", ".join(
        f"('{a}', '{b}', '{c}')" for a, b, c in values) + ") v(industry_id, basin_id, "
        "safety_conditions)").columns(column("industry_id", Text), column("basin_id", Text),
                                      column("safety_conditions", Text)).subquery("v")
    cols = {c.name: c for c in src.c}
    industries = sorted({i for r in active for i in r.industries if i != "*"})
    words = _sql_rules.match_words(many, cols, industries, AS_OF)
    alone = [_sql_rules.rule_sql(r, cols, industries, AS_OF) for r in many]
    with store.engine.connect() as conn:
        got = conn.execute(select(*words, *alone).select_from(src)).all()
    hits = np.zeros(len(many), dtype=int)
    for row in got:
        packed, each = row[:len(words)], list(row[len(words):])
        assert _sql_rules.words_to_matches(packed, len(many)) == each
        hits += np.asarray(each, dtype=int)
    # rules hold in both words: the comparison is not all-false
    assert hits[:_sql_rules.WORD_BITS].any() and hits[_sql_rules.WORD_BITS:].any()


@ON_POSTGIS
def test_a_rerun_writes_only_what_changed(
    store: PostGISStore, pipeline_result: gpd.GeoDataFrame
) -> None:
    """Re-running the classification rewrites nothing when nothing differs, updates the few
    rows that do in place (up to 5 % of the list: the data version still moves on), and
    rewrites the table above that; every path ends equal to the in-process engine."""
    from api.store.postgis import _UPDATE_MAX_SHARE

    expected = pipeline_result.iloc[:400].reset_index(drop=True)
    store.load_enterprises(_blank(expected), loaded_by="test", source_name="synthetic.csv",
                           source_sha256="0" * 64)
    store.store_rule_inputs(expected, None)
    store.load_reference_layers()

    def table_oid() -> int:
        with store.engine.connect() as conn:
            return int(conn.execute(text("SELECT to_regclass('enterprises')::oid")).scalar())

    def run() -> tuple[int, tuple]:
        assert store.classify_in_database(as_of=AS_OF) == len(expected)
        got = store.query(FeatureQuery()).features.sort_values("fid").reset_index(drop=True)
        _compare(got, expected)
        return table_oid(), store.data_version()

    def stale(k: int) -> None:  # k rows whose stored verdict is out of date
        with store.engine.begin() as conn:
            conn.execute(text("UPDATE enterprises SET verdict = 'x', district = '' "
                              "WHERE fid IN (SELECT fid FROM enterprises ORDER BY fid LIMIT :k)"),
                         {"k": k})

    first = run()  # every row changes: a new table
    assert run() == first  # nothing differs: nothing written, the same version
    limit = int(_UPDATE_MAX_SHARE * len(expected))
    assert limit == 20
    stale(limit)
    oid, version = run()  # at the limit: updated in place, a new version
    assert oid == first[0] and version != first[1] and version[0] == first[1][0]
    stale(limit + 1)
    oid2, version2 = run()  # one more: the table is rewritten
    assert oid2 != oid and version2 != version


def _schema(store: PostGISStore) -> dict[str, object]:
    """The live list's columns (type, NOT NULL, default), indexes and constraints."""
    with store.engine.connect() as conn:
        cols = conn.execute(text(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
            "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a LEFT JOIN pg_attrdef d "
            "ON d.adrelid = a.attrelid AND d.adnum = a.attnum WHERE a.attrelid = "
            "to_regclass('enterprises') AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum")).all()
        indexes = conn.execute(text(
            "SELECT indexname, regexp_replace(indexdef, ' ON \\S+ ', ' ON t ') "
            "FROM pg_indexes WHERE tablename = 'enterprises' "
            "AND schemaname = current_schema()")).all()
        constraints = conn.execute(text(
            "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = to_regclass('enterprises')")).all()
    return {"columns": cols, "indexes": sorted(indexes), "constraints": sorted(constraints)}


@ON_POSTGIS
def test_a_rewrite_keeps_the_schema_a_load_makes(
    store: PostGISStore, pipeline_result: gpd.GeoDataFrame
) -> None:
    """A load keeps the indexes the migrations made, and the rewritten list (a table
    created by a query, indexed from two connections) has the columns, NOT NULLs,
    defaults, indexes and primary key of a loaded one; tables left by a classification
    that was killed do not stop the next."""
    expected = pipeline_result.iloc[:300].reset_index(drop=True)
    migrated = {name for name, _ in _schema(store)["indexes"]}  # the migrations' indexes
    store.load_enterprises(_blank(expected), loaded_by="test", source_name="synthetic.csv",
                           source_sha256="0" * 64)
    loaded = _schema(store)
    assert {name for name, _ in loaded["indexes"]} == migrated  # a load drops none
    store.load_reference_layers()
    with store.engine.begin() as conn:  # what a classification killed mid-way leaves
        conn.execute(text("CREATE TABLE bw_classified (x int)"))
        conn.execute(text("CREATE UNLOGGED TABLE bw_class_rows (x int)"))
    with store.engine.connect() as conn:
        oid = conn.execute(text("SELECT to_regclass('enterprises')::oid")).scalar()
    store.classify_in_database(as_of=AS_OF)
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('enterprises')::oid")).scalar() != oid
        left = conn.execute(text(
            "SELECT relname FROM pg_class WHERE relname LIKE 'bw_class%'")).scalars().all()
    assert left == []  # no scratch table nor unswapped rewrite
    assert _schema(store) == loaded
    # the sparse columns are indexed only where not blank
    defs = dict(loaded["indexes"])
    assert defs["ix_enterprises_basin_id"].endswith("WHERE (basin_id <> ''::text)")
    assert "WHERE" not in defs["ix_enterprises_city"]


@ON_POSTGIS
def test_a_sparse_filter_uses_its_partial_index_in_a_generic_plan(
    store: PostGISStore, pipeline_result: gpd.GeoDataFrame
) -> None:
    """basin_id is indexed only where not blank; psycopg prepares a page's text after five
    uses and PostgreSQL may then plan it once for any value (a generic plan), which can use
    a partial index only if the query itself states the index's predicate."""
    from api.store.postgis import _raw_sql

    store.load_enterprises(pipeline_result.iloc[:300], loaded_by="test",
                           source_name="synthetic.csv", source_sha256="0" * 64)
    q = FeatureQuery(properties={"basin_id": ["lianjiang"]}, limit=10)
    _, _, count, params = _raw_sql(q, ["fid"], *store._raw_where(q))
    numbered = count
    for i in range(len(params)):
        numbered = numbered.replace("%s", f"${i + 1}", 1)
    with store.engine.connect() as conn:
        raw = conn.connection.driver_connection
        raw.execute("SET plan_cache_mode = force_generic_plan")
        raw.execute("SET enable_seqscan = off")  # 300 rows: a scan would win either way
        raw.execute(f"PREPARE sparse_count(text) AS {numbered}")
        plan = "\n".join(r[0] for r in raw.execute("EXPLAIN EXECUTE sparse_count('lianjiang')"))
        conn.rollback()
    assert "ix_enterprises_basin_id" in plan, plan
    assert "$1" in plan, plan  # the value is a parameter: the plan is a generic one


@ON_POSTGIS
def test_a_load_during_the_rewrite_wins(
    store: PostGISStore, pipeline_result: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load that lands while a rewrite is being indexed is kept: the classification
    raises, writes nothing, drops its rewrite and releases its lock."""
    from api.store import postgis
    from geo.errors import ConcurrentWriteError

    first = pipeline_result.iloc[:300].reset_index(drop=True)
    second = pipeline_result.iloc[300:500].reset_index(drop=True)
    store.load_enterprises(_blank(first), loaded_by="test", source_name="a.csv",
                           source_sha256="0" * 64)
    store.load_reference_layers()
    other = PostGISStore(store.url, schema=store.schema)  # another worker
    real = postgis._index_lanes

    def load_meanwhile(table: str, lanes: int) -> list[list[str]]:
        other.load_enterprises(_blank(second), loaded_by="other", source_name="b.csv",
                               source_sha256="1" * 64)
        return real(table, lanes)

    monkeypatch.setattr(postgis, "_index_lanes", load_meanwhile)
    try:
        with pytest.raises(ConcurrentWriteError):
            store.classify_in_database(as_of=AS_OF)
    finally:
        other.close()
    got = store.query(FeatureQuery()).features
    assert len(got) == len(second) and set(got["verdict"]) == {"no_action"}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('bw_classified')")).scalar() is None
    monkeypatch.setattr(postgis, "_index_lanes", real)
    store.store_rule_inputs(second, None)  # the attributes the rules read
    assert store.classify_in_database(as_of=AS_OF) == len(second)  # the lock was released
    got = store.query(FeatureQuery()).features.sort_values("fid").reset_index(drop=True)
    _compare(got, second)


@ON_POSTGIS
def test_a_classification_whose_session_dies_leaves_the_list_and_no_lock(
    store: PostGISStore, pipeline_result: gpd.GeoDataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The session holding the classification lock is killed while the rewrite's indexes
    are built: the classification fails, the list stays as it was, and the next one runs
    (the lock went with the session; the leftover rewrite is dropped then)."""
    from sqlalchemy.exc import DBAPIError

    from api.store import postgis

    expected = pipeline_result.iloc[:300].reset_index(drop=True)
    store.load_enterprises(_blank(expected), loaded_by="test", source_name="a.csv",
                           source_sha256="0" * 64)
    store.store_rule_inputs(expected, None)
    store.load_reference_layers()
    version = store.data_version()
    real = postgis._index_lanes

    def kill_the_holder(table: str, lanes: int) -> list[list[str]]:
        with store.engine.begin() as conn:
            conn.execute(text(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' "
                "AND granted AND pid <> pg_backend_pid()"))
        return real(table, lanes)

    monkeypatch.setattr(postgis, "_index_lanes", kill_the_holder)
    with pytest.raises(DBAPIError):
        store.classify_in_database(as_of=AS_OF)
    assert store.data_version() == version  # nothing swapped in
    assert set(store.query(FeatureQuery()).features["verdict"]) == {"no_action"}
    monkeypatch.setattr(postgis, "_index_lanes", real)
    assert store.classify_in_database(as_of=AS_OF) == len(expected)
    got = store.query(FeatureQuery()).features.sort_values("fid").reset_index(drop=True)
    _compare(got, expected)


@ON_POSTGIS
def test_with_units_the_rules_fall_back_to_the_engine(store: PostGISStore) -> None:
    """Unit rules have no SQL form: with stored units the store decides them in process."""
    from geo.pipeline import run_pipeline
    from geo.synthetic import synthetic_dataset, write_dataset

    with tempfile.TemporaryDirectory() as d:
        reg, equ = write_dataset(synthetic_dataset(1500, seed=4), Path(d) / "registry.csv")
        res = run_pipeline(reg, equipment=equ, as_of=AS_OF)
    expected = res.enterprises
    store.load_enterprises(_blank(expected), loaded_by="test", source_name="synthetic.csv",
                           source_sha256="3" * 64)
    assert store.store_rule_inputs(expected, res.units) == len(res.units)
    store.load_reference_layers()
    store.classify_in_database(as_of=AS_OF)
    got = store.query(FeatureQuery()).features.sort_values("fid").reset_index(drop=True)
    _compare(got, expected.reset_index(drop=True))
    assert (got["units"].to_numpy() == expected["units"].to_numpy()).all()
    assert got["rule_ids"].str.contains("steel_blast_furnace_le_400m3").any()


@ON_POSTGIS
def test_sql_predicates_follow_in_process_semantics(store: PostGISStore) -> None:
    """Trimming, NULL/NaN, numbers in text, booleans: SQL masks equal geo.rules masks."""
    from geo.rules import _Columns, _predicate_mask

    df = pd.DataFrame({
        "t": [" 5 ", "x", "", "7.5", "1e1", None],
        "f": [1.0, np.nan, 0.0, 65.0, -3.0, 2.0],
        "b": [True, False, True, False, True, False],
        "d": pd.to_datetime(["2019-06-29", "2019-06-30", None, "2019-07-01", "2020-01-01",
                             "2018-01-01"]),
        "s": ["P·C 32.5", "ｐ．ｃ３２．５Ｒ", "P.O 42.5", "", None, "平拉 工艺"],
    })
    preds = [
        Predicate(field="t", op="eq", value="x"), Predicate(field="t", op="eq", value=5),
        Predicate(field="t", op="gt", value=6), Predicate(field="t", op="is_empty"),
        Predicate(field="t", op="not_empty"), Predicate(field="t", op="ne", value="x"),
        Predicate(field="f", op="lt", value=65), Predicate(field="f", op="not_in", value=[0, 2]),
        Predicate(field="f", op="not_empty"), Predicate(field="b", op="eq", value=True),
        Predicate(field="b", op="ne", value=1),
        Predicate(field="d", op="lt", value="@as_of"), Predicate(field="d", op="le", value="@as_of"),
        Predicate(field="d", op="ge", value=date(2019, 7, 1)),
        Predicate(field="d", op="eq", value=date(2019, 6, 30)),
        Predicate(field="d", op="not_empty"),
        Predicate(field="s", op="contains", value=["p.c32.5"]),
        Predicate(field="s", op="contains", value=["平拉", "格法"]),
        Predicate(field="t", op="lt", value="@as_of"),
    ]
    as_of = date(2019, 6, 30)
    with store.engine.begin() as conn:
        conn.execute(text("CREATE TEMP TABLE p (i int, t text, f float8, b boolean, d date, s text)"))
        conn.execute(text("INSERT INTO p VALUES (:i, :t, CAST(:f AS float8), :b, :d, :s)"), [
            {"i": i, "t": r.t if isinstance(r.t, str) else None,
             "f": "NaN" if np.isnan(r.f) else r.f, "b": bool(r.b),
             "d": None if pd.isna(r.d) else r.d.date(), "s": r.s if isinstance(r.s, str) else None}
            for i, r in enumerate(df.itertuples())
        ])
        p = table("p", column("i"), column("t", Text), column("f", Float), column("b", Boolean),
                  column("d", Date), column("s", Text))
        cols = {"t": p.c.t, "f": p.c.f, "b": p.c.b, "d": p.c.d, "s": p.c.s}
        for pred in preds:
            sql_mask = [bool(v) for v in conn.execute(
                select(_sql_rules.condition_sql(pred, cols, as_of)).order_by(p.c.i)).scalars()]
            want = _predicate_mask(_Columns(df), pred, np.arange(len(df)), as_of).tolist()
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


# --------------------------------------------------------------------------- boundaries
SPATIAL = ("city", "district", "district_code", "basin_id", "region_id", "park_id")


def _classify_points(store: PostGISStore, x: np.ndarray, y: np.ndarray,
                     layers: dict[str, gpd.GeoDataFrame] | None) -> tuple[pd.DataFrame,
                                                                           pd.DataFrame]:
    """(in-database, in-process) spatial columns of points ``x, y``, in input order."""
    from geo.classify import classify

    ent = make_enterprises().iloc[[0] * len(x)].reset_index(drop=True)
    ent = ent.set_geometry(gpd.points_from_xy(x, y), crs=4326)
    ent["lon"], ent["lat"] = x, y
    store.load_enterprises(ent, loaded_by="t", source_name="s.csv", source_sha256="4" * 64)
    store.load_reference_layers(layers)
    store.classify_in_database(as_of=AS_OF)
    got = store.query(FeatureQuery()).features.sort_values("fid").reset_index(drop=True)
    want = classify(ent[["geometry"]].copy(), layers=layers)
    return got[list(SPATIAL)], pd.DataFrame(want[list(SPATIAL)]).reset_index(drop=True)


def _assert_same(got: pd.DataFrame, want: pd.DataFrame, x: np.ndarray, y: np.ndarray) -> None:
    for c in SPATIAL:
        diff = np.flatnonzero(got[c].astype(str).to_numpy() != want[c].astype(str).to_numpy())
        assert diff.size == 0, (c, [(x[i], y[i], got[c][i], want[c][i]) for i in diff[:5]])


@ON_POSTGIS
def test_boundary_points_on_inline_layers(store: PostGISStore) -> None:
    """Edges, vertices, holes, overlaps and grid cut lines: in-database equals in process.

    The district has a hole and a skewed edge; two basins overlap (the first wins, and a
    point on the first one's edge inside the second belongs to the second); cut lines of the
    cell grid (multiples of 0.01 degree) run through every polygon.
    """
    from api.store._sql_grid import CELL_DEG

    outer = [(113.0, 22.0), (113.5, 22.0), (113.5, 22.5), (113.013, 22.4871)]
    hole = [(113.2, 22.2), (113.3, 22.2), (113.3, 22.3), (113.2, 22.3)]
    district = shapely.Polygon(outer, [hole])
    b0 = shapely.Polygon([(113.05, 22.05), (113.25, 22.05), (113.25, 22.15), (113.05, 22.15)])
    b1 = shapely.box(113.1, 22.1, 113.4, 22.4)
    layers = {
        "district": gpd.GeoDataFrame(
            {"code": ["1"], "name_zh": ["甲区"], "city_code": ["9"], "city_zh": ["乙市"]},
            geometry=[district], crs=4326),
        "basin": gpd.GeoDataFrame({"id": ["first", "second"]}, geometry=[b0, b1], crs=4326),
        "region": gpd.GeoDataFrame({"id": ["r"]}, geometry=[shapely.box(113.0, 22.0, 113.02,
                                                                        22.02)], crs=4326),
        "park": gpd.GeoDataFrame({"id": ["p"]}, geometry=[shapely.box(113.4, 22.03, 113.41,
                                                                      22.04)], crs=4326),
    }
    pts = [
        (113.25, 22.25, "hole"), (113.2, 22.25, "hole edge"), (113.2, 22.2, "hole vertex"),
        (113.5, 22.3, "outer edge"), (113.0, 22.0, "outer vertex"),
        (113.25, 22.12, "first's edge inside second"), (113.2, 22.12, "overlap"),
        (113.15, 22.15, "first's top edge, second's interior"),
        (113.4, 22.035, "park edge"), (113.405, 22.035, "park"),
        (113.01, 22.01, "region corner cell"), (113.02, 22.01, "region edge on a cut line"),
    ]
    # the skewed edge: its midpoint and points 1e-12, 1e-9 and 1e-7 degrees either side
    (ax, ay), (bx, by) = outer[3], outer[0]
    nx, ny = -(by - ay), bx - ax
    norm = np.hypot(nx, ny)
    mx, my = (ax + bx) / 2, (ay + by) / 2
    for d in (0.0, 1e-12, -1e-12, 1e-9, -1e-9, 1e-7, -1e-7):
        pts.append((mx + d * nx / norm, my + d * ny / norm, f"skewed edge {d:g}"))
    # cut lines and corners of the cell grid, inside polygons and on their edges
    for k in range(1, 40):
        pts.append((113.0 + k * CELL_DEG, 22.0 + k * CELL_DEG * 0.37, "vertical cut line"))
        pts.append((113.0 + k * CELL_DEG * 0.61, 22.0 + k * CELL_DEG, "horizontal cut line"))
        pts.append((113.0 + k * CELL_DEG, 22.0 + k * CELL_DEG, "cell corner"))
    x = np.array([p[0] for p in pts])
    y = np.array([p[1] for p in pts])
    got, want = _classify_points(store, x, y, layers)
    _assert_same(got, want, x, y)
    by_label = dict(zip([p[2] for p in pts], range(len(pts)), strict=False))
    # the oracle says what the geometry says (and the in-database answers equal it)
    for label in ("hole", "hole edge", "hole vertex", "outer edge", "outer vertex"):
        assert got["district"][by_label[label]] == "", label
    assert got["basin_id"][by_label["first's edge inside second"]] == "second"
    assert got["basin_id"][by_label["overlap"]] == "first"
    assert got["basin_id"][by_label["first's top edge, second's interior"]] == "second"
    assert got["park_id"][by_label["park edge"]] == ""
    assert got["park_id"][by_label["park"]] == "p"
    assert got["region_id"][by_label["region edge on a cut line"]] == ""
    cut = [i for i, p in enumerate(pts) if "cut line" in p[2] or "corner" in p[2]]
    assert (got["district"][cut] == "甲区").sum() > 60  # cut-line points inside count once


@ON_POSTGIS
def test_points_on_real_boundaries(store: PostGISStore) -> None:
    """Vertices, edge midpoints and points 1e-12 .. 1e-7 degrees off the bundled layers' edges.

    In-database equals in process (GEOS decides the points at the boundary).
    """
    from layers import registry

    rng = np.random.default_rng(15)
    xs, ys = [], []
    for kind in ("district", "basin", "region", "park"):
        geoms = registry.load_group(kind).geometry.to_numpy()
        rings = shapely.get_exterior_ring(shapely.get_parts(geoms))
        coords = [shapely.get_coordinates(r) for r in rings]
        for c in (coords[i] for i in rng.choice(len(coords), min(len(coords), 40), False)):
            k = rng.choice(len(c) - 1, min(len(c) - 1, 6), replace=False)
            a, b = c[k], c[k + 1]
            mid = (a + b) / 2
            normal = np.stack([-(b[:, 1] - a[:, 1]), b[:, 0] - a[:, 0]], axis=1)
            normal /= np.maximum(np.hypot(normal[:, 0], normal[:, 1]), 1e-300)[:, None]
            pts = [a, mid] + [mid + d * normal for d in (1e-12, -1e-12, 1e-9, -1e-9, 1e-7,
                                                          -1e-7)]
            for p in pts:
                xs.extend(p[:, 0])
                ys.extend(p[:, 1])
    x, y = np.array(xs), np.array(ys)
    got, want = _classify_points(store, x, y, None)
    _assert_same(got, want, x, y)
    # vertices and midpoints lie on a boundary: many are in no district, some in one
    assert (want["district"] == "").sum() > 50 and (want["district"] != "").sum() > 200


@ON_POSTGIS
def test_classify_changes_the_data_version_for_every_worker(
    store: PostGISStore, pipeline_result: gpd.GeoDataFrame
) -> None:
    """classify_in_database rewrites verdicts within one load: the data version (tile
    cache keys, the point index, each worker's remembered counts) must change with it, so
    the next request of another worker counts the new verdicts."""
    from api.routers.webmap import load_meta
    from api.tiles import tile_key

    expected = pipeline_result.iloc[:400].reset_index(drop=True)
    store.load_enterprises(_blank(expected), loaded_by="test", source_name="synthetic.csv",
                           source_sha256="0" * 64)
    other = PostGISStore(store.url, schema=store.schema)  # another worker's store
    q = FeatureQuery(properties={"verdict": ["no_action"]}, limit=5)

    def matched() -> int:
        view = other.pinned()
        try:
            return view.geojson_page(q).number_matched
        finally:
            view.release()

    try:
        assert matched() == len(expected)  # all blank: no_action; remembered by that worker
        before, key = store.data_version(), tile_key(store, FeatureQuery(), 5, 26, 13, ["x"])
        tag = load_meta(store)["version"]  # the map page's v= of its tile URLs
        store.load_reference_layers()
        store.classify_in_database(as_of=AS_OF)
        assert store.data_version() != before
        assert store.data_version()[0] == before[0]  # the same load
        assert tile_key(store, FeatureQuery(), 5, 26, 13, ["x"]) != key
        assert load_meta(store)["version"] != tag  # browsers' day-long tile caches too
        now = store.counts(FeatureQuery(), "verdict")  # a fresh count (not remembered)
        assert matched() == now.get("no_action", 0) < len(expected)
    finally:
        other.close()
