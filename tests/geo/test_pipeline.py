"""End-to-end pipeline: registry file in, enforcement frame and rejected rows out."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest

from geo.crs import from_wgs84
from geo.errors import InvalidQueryError, UnknownCRSError
from geo.pipeline import locate, run_pipeline
from geo.schema import ENFORCEMENT_COLUMNS, REJECTED_COLUMNS
from geo.synthetic import synthetic_registry, write_registry
from layers.catalog import standards
from layers.registry import load_group


def test_every_row_is_accounted_for(sample_result) -> None:
    res = sample_result
    reg_rejected = res.rejected[res.rejected["source"] == "registry"]
    assert len(res.enterprises) + len(reg_rejected) == res.source_rows
    eq_rejected = res.rejected[res.rejected["source"] == "equipment"]
    from_inventory = res.units[res.units["source"] == "equipment"]
    assert len(from_inventory) + len(eq_rejected) == res.equipment_rows > 0
    assert list(res.enterprises.columns[: len(ENFORCEMENT_COLUMNS)]) == list(ENFORCEMENT_COLUMNS)
    assert list(res.rejected.columns) == list(REJECTED_COLUMNS)
    assert res.enterprises.crs.to_epsg() == 4326
    assert not set(res.enterprises["row"]) & set(reg_rejected["row"])
    assert len(res.source_sha256) == 64


#: What each deliberate defect of the synthetic registry must give, written by hand from the
#: issue catalog (layers/data/issues.toml) and the brief ("nothing silently dropped"), not
#: taken from geo.synthetic.BAD_ROW_KINDS: ("rejected", reason) or ("kept", data issue).
EXPECTED_BAD_ROWS = {
    "uscc_check_digit": ("kept", "uscc_check_digit"),
    "uscc_duplicate": ("kept", "uscc_duplicate"),
    "lonlat_swapped": ("kept", "lonlat_swapped"),
    "zero_coordinates": ("rejected", "no_location"),        # 0,0 and no address
    "outside_guangdong": ("rejected", "outside_guangdong"),  # no address to fall back on
    "unknown_industry": ("rejected", "industry_unknown"),
    "unknown_crs": ("rejected", "crs_unknown"),
    "name_missing": ("rejected", "name_missing"),
    "unparseable_address": ("rejected", "geocode_failed"),   # address only, not geocodable
    "in_the_sea": ("rejected", "outside_districts"),         # in the bounds, in no district
}


def test_bad_rows_reported_with_reason(tmp_path: Path) -> None:
    reg = synthetic_registry(400, seed=7)
    path = write_registry(reg, tmp_path / "reg.csv")
    res = run_pipeline(path, as_of=date(2019, 6, 30))
    rows = reg.index.to_numpy() + 2  # spreadsheet row: header is row 1
    rejected = res.rejected.set_index("row")
    issues = res.enterprises.set_index("row")["data_issues"]
    assert set(reg["_bad_kind"].unique()) - {""} == set(EXPECTED_BAD_ROWS)
    for kind, (outcome, code) in EXPECTED_BAD_ROWS.items():
        bad_rows = rows[reg["_bad_kind"] == kind]
        assert len(bad_rows), kind
        if outcome == "kept":
            assert not set(bad_rows) & set(rejected.index), kind
            assert issues.loc[bad_rows].str.split(";").map(lambda c, k=code: k in c).all(), kind
        else:
            assert (rejected.loc[bad_rows, "reason"] == code).all(), kind
            assert all(f"第{r}行" in m for r, m in zip(bad_rows, rejected.loc[bad_rows, "message"]))
    clean = rows[reg["_bad_kind"] == ""]
    assert not set(clean) & set(rejected.index)  # nothing else dropped
    assert len(res.enterprises) + len(res.rejected) == len(reg)


def test_lianjiang_dyeing_outside_parks_is_shut_down(sample_result) -> None:
    """Cross-check the engine against an independent geopandas.sjoin."""
    ent = sample_result.enterprises
    basins = load_group("basin")
    parks = load_group("park")
    in_lj = gpd.sjoin(ent, basins[basins["id"] == "lianjiang"], predicate="within").index
    in_park = gpd.sjoin(ent, parks, predicate="within").index
    dyeing = ent.index[ent["industry_id"] == "dyeing"]
    expected = dyeing.intersection(in_lj).difference(in_park)
    assert len(expected) > 50
    assert (ent.loc[expected, "verdict"] == "shutdown").all()
    inside_park = dyeing.intersection(in_park).intersection(in_lj)  # 潮南 straddles the edge
    assert len(inside_park) > 20
    # inside a park the exit rule does not apply: the basin standard (or a stronger verdict
    # from the enterprise's own equipment, e.g. its coal boiler or an old stenter) decides
    assert not ent.loc[inside_park, "rule_ids"].str.contains("lianjiang_dyeing_outside_park").any()
    assert ent.loc[inside_park, "rule_ids"].str.contains("dyeing_basin_standard_lianjiang").all()
    only_area = ent.loc[inside_park, "rule_ids"].str.fullmatch(
        "dyeing_basin_standard_lianjiang;priority_area_supervision")
    assert only_area.sum() > 10
    assert (ent.loc[inside_park[only_area.to_numpy()], "verdict"] == "basin_standard").all()
    assert ent.loc[inside_park, "standards"].str.contains("DB44/2051-2017").all()


def test_basin_standard_matches_catalog(sample_result) -> None:
    ent = sample_result.enterprises
    by_basin = {b: s.code for s in standards() for b in getattr(s, "basins", [])}
    paper_dye = ent[ent["industry_id"].isin(["paper", "dyeing"]) & (ent["basin_id"] != "")]
    assert set(paper_dye["basin_id"]) == {"lianjiang", "maozhou", "shima", "danshui"}
    for basin, group in paper_dye.groupby("basin_id"):
        assert group["standards"].str.contains(by_basin[basin], regex=False).all(), basin


def test_rules_before_2019_do_not_shut_down(tmp_path: Path) -> None:
    reg = synthetic_registry(300, seed=3)
    path = write_registry(reg, tmp_path / "reg.csv")
    before = run_pipeline(path, as_of=date(2018, 12, 31)).enterprises
    after = run_pipeline(path, as_of=date(2019, 1, 1)).enterprises
    assert (before["verdict"] == "shutdown").sum() == 0
    assert (after["verdict"] == "shutdown").sum() > 0


def test_xlsx_registry_gives_same_result_as_csv(tmp_path: Path) -> None:
    reg = synthetic_registry(200, seed=11)
    csv = run_pipeline(write_registry(reg, tmp_path / "r.csv"), as_of=date(2019, 6, 30))
    xlsx = run_pipeline(write_registry(reg, tmp_path / "r.xlsx"), as_of=date(2019, 6, 30))
    cols = ["row", "uscc", "verdict", "basin_id", "district"]
    pd.testing.assert_frame_equal(
        csv.enterprises[cols].reset_index(drop=True), xlsx.enterprises[cols].reset_index(drop=True)
    )
    np.testing.assert_allclose(csv.enterprises["lon"], xlsx.enterprises["lon"], atol=1e-9)


def test_locate_lianjiang_point() -> None:
    # 陈店 (116.38, 23.27): in the Lianjiang basin (tests/layers/test_data.py) and in none of
    # the three dyeing parks (checked below with shapely on the park layer), so 表2 第6项
    # "练江流域...园区外的印染企业...退出" applies: shutdown, not the in-park basin standard
    answer = locate(116.38, 23.27, as_of=date(2019, 6, 30))
    loc = answer["location"]
    assert (loc["city"], loc["district"], loc["basin_id"]) == ("汕头市", "潮南区", "lianjiang")
    parks = load_group("park")
    assert not parks.contains(gpd.points_from_xy([116.38], [23.27])[0]).any()
    assert loc["park_id"] == ""
    by_industry = {i["industry_id"]: i for i in answer["industries"]}
    assert len(by_industry) == 12
    assert by_industry["dyeing"]["verdict"] == "shutdown"
    assert "lianjiang_dyeing_outside_park" in by_industry["dyeing"]["rule_ids"]
    assert "DB44/2051-2017" in by_industry["paper"]["standards"]
    # steel: special emission limits from 2019-01-01 (表2 第1项(2)) outrank priority supervision
    assert by_industry["steel"]["verdict"] == "emission_standard"
    assert "priority_area_supervision" in by_industry["steel"]["rule_ids"]
    assert by_industry["flat_glass"]["verdict"] == "priority_supervision"


@pytest.mark.parametrize("crs", ["GCJ02", "BD09", "CGCS2000"])
def test_locate_any_crs_gives_same_place(crs: str) -> None:
    lon, lat = 113.90, 22.76  # Shenzhen, Guangming district (Maozhou basin)
    x, y = from_wgs84(np.array([lon]), np.array([lat]), crs)
    answer = locate(float(x[0]), float(y[0]), crs, as_of=date(2019, 6, 30))
    assert abs(answer["location"]["lon"] - lon) < 1e-6
    assert abs(answer["location"]["lat"] - lat) < 1e-6
    loc = answer["location"]
    assert (loc["city"], loc["district"], loc["basin_id"]) == ("深圳市", "光明区", "maozhou")
    by_industry = {i["industry_id"]: i for i in answer["industries"]}
    # 茅洲河: dyeing and paper meet the basin standard DB44/2130-2018 (表2 第5项(2)、第6项(3))
    assert by_industry["dyeing"]["verdict"] == "basin_standard"
    assert "DB44/2130-2018" in by_industry["dyeing"]["standards"]
    assert "DB44/2130-2018" in by_industry["paper"]["standards"]


def test_locate_rejects_points_outside_guangdong() -> None:
    with pytest.raises(InvalidQueryError, match="no Guangdong district"):
        locate(108.32, 22.82)
    with pytest.raises(InvalidQueryError, match="finite"):
        locate(float("nan"), 23.0)
    with pytest.raises(UnknownCRSError, match="GCJ02"):
        locate(113.9, 22.7, "EPSG:3857")


def test_stages_reported_in_order_with_row_counts(tmp_path: Path) -> None:
    reg = synthetic_registry(300, seed=11)
    path = write_registry(reg, tmp_path / "reg.csv")
    events: list[tuple[str, int | None, bool]] = []
    res = run_pipeline(path, as_of=date(2019, 6, 30),
                       progress=lambda stage, rows=None, *, done=False:
                       events.append((stage, rows, done)))
    assert [(s, d) for s, _r, d in events] == [
        ("read", False), ("read", True), ("geocode", False), ("geocode", True),
        ("classify", False), ("classify", True), ("rules", False), ("rules", True)]
    ends = {s: r for s, r, d in events if d}
    assert ends["read"] == len(reg) == res.source_rows
    assert ends["rules"] == len(res.enterprises)


def test_outputs_keep_registry_text_numeric_columns_and_round_coordinates(tmp_path: Path) -> None:
    from geo.ingest import numeric_columns

    lines = [
        "企业名称,行业,经度,纬度,坐标系,燃煤锅炉蒸吨,高炉容积",
        "潮南某印染有限公司（1厂）,印染,116.43,23.25,GCJ02,12.5,",
        "韶关某钢铁有限公司,钢铁,113.6,24.8,WGS84,,400",
    ]
    path = tmp_path / "r.csv"
    path.write_text("\n".join(lines), encoding="utf-8")
    ent = run_pipeline(path, as_of=date(2019, 6, 30)).enterprises
    assert ent["name"].tolist()[0] == "潮南某印染有限公司（1厂）"  # not NFKC-folded to (1厂)
    assert set(numeric_columns()) <= set(ent.columns)
    assert ent["coal_boiler_tph"].tolist()[0] == 12.5
    assert ent["furnace_volume_m3"].tolist()[1] == 400.0
    assert ent["annual_output_t"].isna().all()  # not in this registry: blank
    # GCJ-02 converted: 7 decimals (about 1 cm), not 15
    assert ent["lon"].map(lambda v: len(repr(v).split(".")[1])).max() <= 7
    assert abs(ent["lon"].iloc[0] - ent.geometry.x.iloc[0]) < 1e-7


def test_points_outside_every_district_use_the_issue_catalog(tmp_path: Path) -> None:
    from geo.ingest import MESSAGE_SEP

    path = tmp_path / "sea.csv"
    path.write_text("企业名称,行业,经度,纬度\n海上某厂,印染,115.6,22.3\n", encoding="utf-8")
    rej = run_pipeline(path, as_of=date(2019, 6, 30)).rejected
    assert rej["reason"].tolist() == ["outside_districts"]
    zh, en = rej["message"].iloc[0].split(MESSAGE_SEP)
    assert "第2行" in zh and "坐标系" in zh and "row 2" in en and "coordinate system" in en
