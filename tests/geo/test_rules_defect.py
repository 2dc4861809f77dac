"""The Table 5 defect: equipment rules must fire on a registry file, not only on a hand frame.

Before the fix the five Table 5 rules read ``blast_furnace_m3``, ``cement_mill_diameter_m``,
``prebaked_cell_ka``, ``tannery_hides_per_year`` and ``ceramic_tile_m2_per_year``, fields
that ``geo.ingest`` never produces: a 钢铁 row with 高炉容积 = 300 came out ``no_action``.
"""

from __future__ import annotations

import copy
import csv
from datetime import date
from pathlib import Path

import openpyxl
import pytest

from geo.errors import ReferenceDataError
from geo.pipeline import run_pipeline
from layers.catalog import parse_rule_catalog, read_data_toml

AS_OF = date(2019, 6, 30)
# 韶关市曲江区 (steel cluster), a point well inside the district and outside every basin
HEADER = ["统一社会信用代码", "企业名称", "行业", "经度", "纬度", "坐标系", "高炉容积(立方米)"]
ROW = ["", "曲江测试钢铁有限公司", "钢铁", "113.60", "24.68", "WGS84", "300"]


def _write_csv(path: Path) -> Path:
    with path.open("w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(HEADER)
        writer.writerow(ROW)
    return path


def _write_xlsx(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "企业名录"
    ws.append(HEADER)
    ws.append(ROW)
    wb.save(path)
    return path


@pytest.mark.parametrize("writer", [_write_csv, _write_xlsx], ids=["csv", "xlsx"])
def test_blast_furnace_of_300_m3_in_a_registry_is_shut_down(tmp_path: Path, writer) -> None:
    path = writer(tmp_path / f"registry{'.csv' if writer is _write_csv else '.xlsx'}")
    res = run_pipeline(path, as_of=AS_OF)
    assert len(res.enterprises) == 1, res.rejected
    row = res.enterprises.iloc[0]
    assert row["verdict"] == "shutdown"
    assert "表5 第1项(1)" in row["reasons"]


def test_a_rule_reading_a_field_nothing_produces_fails_to_load() -> None:
    raw = copy.deepcopy(read_data_toml("rules.toml"))
    raw["rule"][0]["when"] = [{"field": "blast_furnace_m3", "op": "le", "value": 400}]
    with pytest.raises(ReferenceDataError, match="blast_furnace_m3"):
        parse_rule_catalog(raw)
