"""Impact dry run on the bundled sample registry when the Shima basin is replaced.

Oracle: plain ``shapely.contains_xy`` of every sample enterprise against the old and the
new Shima polygon decides who must appear in the report (basin changes), independently of
the cell-index classifier the engine uses.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import shapely

from layers import registry
from layers.impact import impact, write_impact
from layers.importer import candidate_frame, import_layer
from tests.layers.conftest import frame

AS_OF = date(2019, 6, 30)


@pytest.fixture
def shima_v1(tmp_path: Path) -> str:
    """A candidate Shima: the bundled outline shifted 3 km east (stored, not active)."""
    old = registry.load_layer("shima").geometry.iloc[0]
    moved = shapely.affinity.translate(old, xoff=0.03)
    src = tmp_path / "shima_moved.gpkg"
    frame(list(moved.geoms[0].exterior.coords), "EPSG:4326", name_zh="石马河流域").to_file(
        src, engine="pyogrio")
    rec = import_layer(src, kind="basin", layer_id="shima", created_by="t", source="test",
                       licence="CC0-1.0", accuracy_m=1000).version
    assert rec is not None
    return rec.version


def test_dry_run_lists_every_enterprise_whose_basin_changes(sample_result, shima_v1) -> None:
    ent = sample_result.enterprises
    rep = impact(ent, "shima", shima_v1, as_of=AS_OF)
    assert registry.layer_info("shima").version == "bundled"  # a dry run switches nothing
    x, y = ent.geometry.x.to_numpy(), ent.geometry.y.to_numpy()
    old = registry.load_layer("shima").geometry.iloc[0]
    new_geom = shapely.union_all(candidate_frame("shima", shima_v1).geometry.to_numpy())
    in_old = shapely.contains_xy(old, x, y)
    in_new = shapely.contains_xy(new_geom, x, y)
    others = registry.shared_group("basin")
    other_geoms = others[others["id"] != "shima"].geometry.to_numpy()
    in_other = np.zeros(len(ent), dtype=bool)
    for g in other_geoms:
        in_other |= shapely.contains_xy(g, x, y)
    # a point leaving/entering shima and in no other basin must change basin
    must = (in_old != in_new) & ~in_other
    listed = set(rep.changes["uscc"])
    assert must.sum() > 10
    assert set(ent["uscc"][must]) <= listed
    # and nobody outside both polygons is listed for a basin change
    untouched = ~in_old & ~in_new
    basin_changed = rep.changes[rep.changes["changed"].str.contains("basin_id")]
    assert not set(ent["uscc"][untouched]) & set(basin_changed["uscc"])
    assert rep.counts["basin_id"] == len(basin_changed)
    # verdicts follow: dyeing/paper leaving shima lose the basin standard. Where it was the
    # strongest verdict it changes; a stronger one (a coal boiler to rectify, obsolete
    # equipment to shut down; geo.rules) outranks it before and after alike.
    lost = basin_changed[(basin_changed["basin_id_before"] == "shima")
                         & basin_changed["industry_id"].isin(["dyeing", "paper"])
                         & (basin_changed["basin_id_after"] == "")]
    was_basin = lost[lost["verdict_before"] == "basin_standard"]
    assert len(was_basin) and (was_basin["verdict_after"] != "basin_standard").all()
    assert (lost["verdict_after"] != "basin_standard").all()
    assert rep.versions_after[rep.versions_before.index("shima@bundled")] == f"shima@{shima_v1}"


def test_impact_files_csv_xlsx_geojson(sample_result, shima_v1, tmp_path: Path) -> None:
    rep = impact(sample_result.enterprises, "shima", shima_v1, as_of=AS_OF)
    paths = write_impact(rep, tmp_path / "impact")
    csv = pd.read_csv(paths["csv"], dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert len(csv) == rep.changed and {"uscc", "basin_id_before", "basin_id_after",
                                        "verdict_before", "verdict_after"} <= set(csv.columns)
    wb = openpyxl.load_workbook(paths["xlsx"], read_only=True)
    assert wb.sheetnames == ["汇总", "变化企业"]
    header = [c.value for c in next(wb["变化企业"].iter_rows(max_row=1))]
    assert {"企业名称", "原流域", "新流域", "原处置结论", "新处置结论"} <= set(header)
    rows = list(wb["变化企业"].iter_rows(min_row=2, values_only=True))
    assert len(rows) == rep.changed
    assert any(r[header.index("原流域")] == "石马河流域" for r in rows)
    gj = json.loads(paths["geojson"].read_text(encoding="utf-8"))
    kinds = [f["properties"]["change"] for f in gj["features"]]
    assert kinds.count("enterprise") == rep.changed
    assert {"gained", "lost"} <= set(kinds)
    gained = next(f for f in gj["features"] if f["properties"]["change"] == "gained")
    assert gained["geometry"]["type"] in ("Polygon", "MultiPolygon")
    assert gj["summary"]["to_version"] == shima_v1


def test_units_take_part_in_both_verdicts(sample_result, shima_v1) -> None:
    # an enterprise shut down for obsolete equipment (Table 5) stays shut down whichever
    # basin polygon is active: with its units the dry run must not list a verdict change
    from layers.catalog import rules

    ent, units = sample_result.enterprises, sample_result.units
    unit_shutdown = {r.id for r in rules().rules if r.scope == "unit" and r.verdict == "shutdown"}
    matched = ent["rule_ids"].fillna("").str.split(";")
    tech = matched.map(lambda ids: bool(unit_shutdown & set(ids))) & ent["verdict"].eq("shutdown")
    with_units = impact(ent, "shima", shima_v1, as_of=AS_OF, units=units)
    without = impact(ent, "shima", shima_v1, as_of=AS_OF)
    moved = set(with_units.changes.loc[
        with_units.changes["changed"].str.contains("basin_id"), "uscc"]) & set(ent["uscc"][tech])
    assert moved  # some equipment-shutdown enterprises do cross the moved border
    verdict_changed = with_units.changes[with_units.changes["changed"].str.contains("verdict")]
    assert not moved & set(verdict_changed["uscc"])
    # without their units those same enterprises are judged on enterprise rules only
    assert (without.changes.set_index("uscc").loc[sorted(moved), "verdict_before"]
            != "shutdown").any()
