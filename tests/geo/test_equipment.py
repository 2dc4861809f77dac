"""Tests for geo.equipment: reading 设备清单 files, units, rejections, joins, derived fields."""

from __future__ import annotations

import csv
from datetime import date
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest

from geo.equipment import derive_unit_fields, join_units, parse_measure, read_equipment
from geo.errors import MissingColumnError
from geo.schema import REJECTED_COLUMNS


def _csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.mark.parametrize(
    ("measure", "cell", "header_unit", "unit_col", "want", "column"),
    [
        ("volume_m3", "300", "m³", "", 300.0, "volume_m3"),
        ("volume_m3", "300立方米", "", "", 300.0, "volume_m3"),
        ("volume_m3", "300", "", "", 300.0, "volume_m3"),          # default unit m³
        ("diameter_m", "3.2米", "", "", 3.2, "diameter_m"),
        ("diameter_m", "2800", "毫米", "", 2.8, "diameter_m"),
        ("diameter_m", "280 cm", "", "", 2.8, "diameter_m"),
        ("current_ka", "16万安培", "", "", 160.0, "current_ka"),
        ("current_ka", "158000", "A", "", 158.0, "current_ka"),
        ("power_mw", "30万千瓦", "", "", 300.0, "power_mw"),
        ("power_mw", "135", "MW", "", 135.0, "power_mw"),
        ("speed_m_per_min", "2米/秒", "", "", 120.0, "speed_m_per_min"),
        ("capacity", "5.1", "万吨/年", "", 51000.0, "capacity_t_per_year"),
        ("capacity", "1.1", "", "万吨/年", 11000.0, "capacity_t_per_year"),
        ("capacity", "0.7万标张/年", "", "", 7000.0, "capacity_hides_per_year"),
        ("capacity", "100", "", "万平方米/年", 1_000_000.0, "capacity_m2_per_year"),
        ("capacity", "20万件", "", "", 200_000.0, "capacity_pieces_per_year"),
        ("capacity", "１，２００", "吨/年", "", 1200.0, "capacity_t_per_year"),  # full-width
    ],
)
def test_units_convert_exactly(measure, cell, header_unit, unit_col, want, column) -> None:
    value, col, err = parse_measure(
        pd.Series([cell]), measure, header_unit=header_unit,
        unit_column=pd.Series([unit_col]) if unit_col else None,
    )
    assert err.iloc[0] == ""
    assert value.iloc[0] == want  # exact, not approximately: thresholds compare exactly
    assert col.iloc[0] == column


@pytest.mark.parametrize(
    ("measure", "cell", "header_unit", "code"),
    [
        ("diameter_m", "3", "", "measure_unit_missing"),        # no default for a diameter
        ("diameter_m", "3英尺", "", "measure_unit_unknown"),
        ("diameter_m", "2800", "米", "measure_out_of_range"),    # millimetres written as metres
        ("volume_m3", "约三百", "m³", "measure_not_a_number"),
        ("capacity", "5", "", "measure_unit_missing"),
    ],
)
def test_bad_measures_are_named(measure, cell, header_unit, code) -> None:
    value, _col, err = parse_measure(pd.Series([cell]), measure, header_unit=header_unit)
    assert err.iloc[0] == code and np.isnan(value.iloc[0])


def test_rejected_rows_name_row_field_and_expected(tmp_path: Path) -> None:
    path = _csv(tmp_path / "e.csv",
                ["统一社会信用代码", "设备编号", "设备类型", "直径", "燃料", "是否经改造"],
                [["X1", "1", "水泥磨", "3.2米", "煤", "是"],
                 ["X1", "2", "水泥磨", "3.2", "", ""],         # no unit for the diameter
                 ["X1", "3", "时光机", "", "", ""],           # unknown type
                 ["X1", "4", "锅炉", "", "木头", ""],          # unknown fuel
                 ["X1", "5", "74型设备", "", "", "也许"],       # not a yes/no
                 ["", "", "", "", "", ""]])                   # blank line: skipped
    res = read_equipment(path)
    assert res.source_rows == 5
    assert len(res.units) + len(res.rejected) == res.source_rows
    assert list(res.rejected.columns) == list(REJECTED_COLUMNS)
    rej = res.rejected.set_index("row")
    assert rej.loc[3, "reason"] == "measure_unit_missing" and rej.loc[3, "field"] == "直径"
    assert rej.loc[4, "reason"] == "unit_type_unknown" and "水泥粉磨设备" in rej.loc[4, "message"]
    assert rej.loc[5, "reason"] == "value_unknown" and rej.loc[5, "field"] == "燃料"
    assert rej.loc[6, "reason"] == "value_unknown" and rej.loc[6, "field"] == "是否经改造"
    assert (rej["source"] == "equipment").all()
    assert all(f"设备清单第{r}行" in m for r, m in zip(rej.index, rej["message"], strict=True))
    unit = res.units.iloc[0]
    assert (unit["unit_type"], unit["diameter_m"], unit["fuel"], unit["modified"]) == \
        ("cement_mill", 3.2, "coal", True)


def test_missing_key_columns_fail_loudly(tmp_path: Path) -> None:
    with pytest.raises(MissingColumnError, match="设备类型"):
        read_equipment(_csv(tmp_path / "a.csv", ["统一社会信用代码", "容积"], [["X", "1"]]))
    with pytest.raises(MissingColumnError, match="企业名称"):
        read_equipment(_csv(tmp_path / "b.csv", ["设备类型", "容积"], [["高炉", "1"]]))


def test_join_by_code_else_unique_name() -> None:
    ent = pd.DataFrame({"row": [2, 3, 4, 5], "uscc": ["A", "B", "", ""],
                        "name": ["甲厂", "乙厂", "丙厂", "丙厂"]})
    units = pd.DataFrame({
        "source": "equipment", "source_row": [2, 3, 4, 5, 6],
        "uscc": ["B", "Z", "", "", ""], "name": ["", "", "甲厂", "丙厂", "丁厂"],
        "unit_type": "other",
    })
    joined, rejected = join_units(units, ent)
    assert joined["enterprise_row"].tolist() == [3, 2]
    rej = rejected.set_index("row")["reason"].to_dict()
    assert rej == {3: "unit_enterprise_unknown", 5: "unit_enterprise_ambiguous",
                   6: "unit_enterprise_unknown"}


def test_xlsx_second_sheet_is_the_inventory(tmp_path: Path) -> None:
    wb = openpyxl.Workbook()
    wb.active.append(["企业名称"])
    ws = wb.create_sheet("Sheet2")
    ws.append(["企业名称", "设备类型", "公称容量(吨)"])
    ws.append(["甲厂", "转炉", 30])
    wb.save(tmp_path / "r.xlsx")
    res = read_equipment(tmp_path / "r.xlsx")
    assert res.units.loc[0, "tonnage_t"] == 30.0 and res.units.loc[0, "unit_type"] == "converter"


def test_derived_age_and_energy_fields() -> None:
    units = pd.DataFrame({
        "commission_year": [2003.0, np.nan, 2010.0],
        "service_years": [np.nan, 17.0, np.nan],
        "energy_indicator_id": ["aluminium_liquid_ac_power", "", "steel_major_processes"],
        "energy_value": [13701.0, np.nan, 500.0],
        "energy_recheck_value": [13700.0, np.nan, np.nan],
        "inspection_date": pd.to_datetime(["2019-08-31", None, "2019-01-15"]),
        "extension_months": [0.0, np.nan, 3.0],
    })
    out = derive_unit_fields(units, as_of=date(2019, 6, 30))
    assert out["age_years"].tolist()[:2] == [16.0, 17.0]
    assert out["energy_over_limit"].tolist()[0] is True
    assert out["energy_recheck_over_limit"].tolist()[0] is False  # 13700 is within ≤ 13700
    assert out["energy_limit_needed"].tolist() == [False, False, True]
    # 2019-08-31 + 6 months = 2020-02-29 (month end clipped); 2019-01-15 + 9 = 2019-10-15
    got = out["energy_deadline"].dt.strftime("%Y-%m-%d").fillna("").tolist()
    assert got == ["2020-02-29", "", "2019-10-15"]
