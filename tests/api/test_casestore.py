"""The case store on both providers: append-only history, the state-at-a-date query, and
the GeoPackage companion as GDAL reads it."""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pyogrio
import pytest
import sqlalchemy as sa

from api.store import Store
from api.store.casestore import APPEND_ONLY_TABLES, case_store_for, companion_path, metadata
from geo.cases import CASE_COLUMNS

NOW = datetime(2019, 12, 1, tzinfo=UTC)


def _random_history(n_cases: int, n_events: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    cases = pd.DataFrame({"case_id": np.arange(1, n_cases + 1), "opened_on": date(2019, 1, 1),
                          "opened_at": NOW, "opened_by": "t", "load_id": 1},
                         columns=list(CASE_COLUMNS))
    days = pd.Timestamp("2019-01-01") + pd.to_timedelta(rng.integers(0, 365, n_events), "D")
    events = pd.DataFrame({
        "case_id": rng.integers(1, n_cases + 1, n_events),
        "field": rng.choice(["status", "deadline", "note"], n_events),
        "before": "", "after": [f"v{i}" for i in range(n_events)],
        "effective_date": days.date, "recorded_at": NOW, "recorded_by": "t",
        "source": "test", "note": "",
    })
    return cases, events


def _oracle(events: pd.DataFrame, on: date) -> pd.DataFrame:
    """Latest event per case and field on or before ``on``, by a plain loop (second method)."""
    best: dict[tuple[int, str], tuple[date, int, str]] = {}
    for i, r in enumerate(events.itertuples(index=False)):
        if r.effective_date <= on:
            key = (int(r.case_id), r.field)
            if key not in best or (r.effective_date, i) >= best[key][:2]:
                best[key] = (r.effective_date, i, r.after)
    rows = [(k[0], k[1], v[2]) for k, v in best.items()]
    return pd.DataFrame(rows, columns=["case_id", "field", "after"]).sort_values(
        ["case_id", "field"]).reset_index(drop=True)


def test_state_query_equals_a_loop_over_the_history(store: Store) -> None:
    cs = case_store_for(store)
    cases, events = _random_history(40, 600, seed=11)
    with cs.locked() as conn:
        cs.append(conn, cases=cases, events=events)
    for on in (date(2019, 1, 1), date(2019, 6, 30), date(2019, 12, 31)):
        got = cs.latest(on)[["case_id", "field", "after"]].sort_values(
            ["case_id", "field"]).reset_index(drop=True)
        pd.testing.assert_frame_equal(got, _oracle(events, on), check_dtype=False)


def test_history_rows_can_be_neither_changed_nor_deleted(store: Store) -> None:
    cs = case_store_for(store)
    cases, events = _random_history(2, 5, seed=1)
    with cs.locked() as conn:
        cs.append(conn, cases=cases, events=events)
    for stmt in ("UPDATE case_events SET after = 'x'", "DELETE FROM case_events",
                 "UPDATE cases SET opened_by = 'x'", "DELETE FROM cases"):
        with pytest.raises(sa.exc.DatabaseError, match="append-only"):
            with cs.locked() as conn:
                conn.exec_driver_sql(stmt)
    assert len(cs.history()) == 5 and len(cs.cases()) == 2


def test_a_load_is_applied_once_even_when_asked_twice(store: Store) -> None:
    from api.casework import sync_cases
    from api.testing import make_enterprises

    store.load_enterprises(make_enterprises(), loaded_by="t", source_name="x",
                           source_sha256="0" * 64)
    first = sync_cases(store, as_of=date(2019, 4, 1))
    assert first is not None and first.counts["opened"] == 5
    assert sync_cases(store, as_of=date(2019, 4, 1)) is None
    assert len(case_store_for(store).cases()) == 5


def test_geopackage_companion_is_a_geopackage_gdal_lists(tmp_path) -> None:
    from api.store import get_store

    store = get_store(tmp_path / "bw.gpkg")
    store.init()
    cs = case_store_for(store)
    cases, events = _random_history(3, 10, seed=2)
    with cs.locked() as conn:
        cs.append(conn, cases=cases, events=events)
    path = companion_path(tmp_path / "bw.gpkg")
    assert path.name == "bw.cases.gpkg"
    layers = {name for name, _ in pyogrio.list_layers(path)}
    assert set(APPEND_ONLY_TABLES) <= layers
    df = pyogrio.read_dataframe(path, layer="case_events", read_geometry=False)
    assert len(df) == 10 and set(df["after"]) == set(events["after"])
    ts = pd.to_datetime(df["recorded_at"])
    assert ts.dt.tz is not None and (ts == pd.Timestamp(NOW)).all()
    # the enterprise file can be replaced whole without touching the history
    from api.testing import make_enterprises

    store.load_enterprises(make_enterprises(), loaded_by="t", source_name="x",
                           source_sha256="0" * 64)
    assert len(cs.history()) == 10


@pytest.mark.postgis
def test_alembic_schema_matches_the_store_metadata(tmp_path) -> None:
    from tests.api.conftest import open_store

    gen = open_store("postgis", tmp_path)
    store = next(gen)
    try:
        insp = sa.inspect(store.engine)
        for table in metadata.sorted_tables:
            cols = {c["name"]: c for c in insp.get_columns(table.name)}
            assert set(cols) == {c.name for c in table.columns}, table.name
            for c in table.columns:
                assert cols[c.name]["nullable"] == c.nullable, (table.name, c.name)
    finally:
        gen.close()
