"""Cases as an append-only history: opening, matching across loads, the workflow, states.

Oracles: the plan's deadlines (二(一)2: six months, one extension of at most three), Table 5
citations for the dimension, geodesic distances from pyproj for the matching radius, and
dates at the boundary.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

import numpy as np
import pandas as pd
import pytest
from pyproj import Geod

from geo.cases import (
    CaseChange,
    CaseError,
    apply_changes,
    case_attributes,
    exit_dates,
    latest_events,
    match_enterprises,
    plan_change,
    rule_metadata,
    states,
    summary,
    sync_events,
)
from geo.schema import ENFORCEMENT_COLUMNS
from layers.casework import case_spec

T0 = datetime(2019, 4, 1, 9, tzinfo=UTC)


def _enterprises(rows: list[tuple]) -> pd.DataFrame:
    """(uscc, name, industry_id, verdict, rule_ids, basin_id, lon, lat) -> enforcement rows."""
    df = pd.DataFrame({c: [""] * len(rows) for c in ENFORCEMENT_COLUMNS})
    for i, col in enumerate(("uscc", "name", "industry_id", "verdict", "rule_ids", "basin_id",
                             "lon", "lat")):
        df[col] = [r[i] for r in rows]
    df["industry"] = df["industry_id"].map({"dyeing": "印染", "ceramics": "陶瓷",
                                            "paper": "造纸"}).fillna("")
    df["city"] = "汕头市"
    return df


FIRST = _enterprises([
    ("U1", "潮南甲印染厂", "dyeing", "shutdown",
     "lianjiang_dyeing_outside_park;dyeing_basin_standard_lianjiang", "lianjiang", 116.43, 23.25),
    ("U2", "潮南乙印染厂", "dyeing", "basin_standard", "dyeing_basin_standard_lianjiang",
     "lianjiang", 116.45, 23.27),
    ("", "无码陶瓷厂", "ceramics", "shutdown", "ceramic_tile_line_lt_1m_m2", "", 113.10, 23.02),
    ("U4", "佛山纸业", "paper", "no_action", "", "", 113.20, 23.05),
])


def _open(enterprises: pd.DataFrame = FIRST, on: date = date(2019, 4, 1)):
    res = sync_events(pd.DataFrame(columns=["case_id", "uscc", "name", "lon", "lat", "present"]),
                      enterprises, load_id=1, as_of=on, recorded_by="t", next_case_id=1,
                      recorded_at=T0)
    return res


def _state(events: pd.DataFrame, cases: pd.DataFrame, on: date) -> pd.DataFrame:
    return states(latest_events(events, on), cases, as_of=on, exit_dates=exit_dates(events, on))


# --------------------------------------------------------------------------- rule metadata


def test_dimension_and_department_follow_the_plans_sections() -> None:
    meta = rule_metadata()
    assert meta.loc["ceramic_tile_line_lt_1m_m2", "dimension"] == "technology"  # 表5
    assert meta.loc["dyeing_basin_standard_lianjiang", "dimension"] == "environment"  # 表2
    assert meta.loc["coal_boiler_conversion_pearl_cities", "department"] == "省生态环境厅"
    assert meta.loc["coal_boiler_conversion_pearl_cities", "topic"] == "coal_boiler"
    # 表2 第6项(2): "2019年1月1日起…全部停产退出" -> due on its effective date
    assert meta.loc["lianjiang_dyeing_outside_park", "deadline"] == date(2019, 1, 1)
    assert meta.loc["coal_boiler_conversion_guangzhou_below_65tph", "deadline"] == date(
        2019, 12, 31)
    assert meta.loc["priority_area_supervision", "deadline"] is None


def test_capacity_is_read_from_the_rules_registry_column_when_present() -> None:
    e = FIRST.copy()
    e["ceramic_tile_m2_per_year"] = [np.nan, np.nan, 600_000.0, np.nan]
    a = case_attributes(e)
    assert a.loc[2, "capacity"] == "600000.0" and a.loc[2, "capacity_unit"] == "平方米/年"
    assert a.loc[2, "dimensions"] == "technology" and a.loc[0, "deadline"] == "2019-01-01"
    assert a.loc[0, "capacity"] == ""


# --------------------------------------------------------------------------- opening, sync


def test_a_case_opens_for_every_verdict_but_no_action() -> None:
    res = _open()
    assert res.counts == {"opened": 3, "continued": 0, "changed": 0, "verdict_changed": 0,
                          "absent": 0}
    assert list(res.new_cases["case_id"]) == [1, 2, 3]
    s = _state(res.events, res.new_cases, date(2019, 4, 1))
    assert list(s["name"]) == ["潮南甲印染厂", "潮南乙印染厂", "无码陶瓷厂"]
    assert (s["status"] == "identified").all()
    assert s.loc[0, "departments"] == "省生态环境厅"
    assert s.loc[2, "departments"] == "省工业和信息化厅、省发展改革委、省能源局"
    # the Lianjiang shutdown was due on 2019-01-01: overdue from the day it is opened
    assert s.loc[0, "overdue"] and s.loc[0, "days_overdue"] == 90
    assert not s.loc[1, "overdue"]


def test_matching_by_code_then_name_within_the_radius() -> None:
    geod = Geod(ellps="WGS84")
    cur = pd.DataFrame({"case_id": [1, 2], "uscc": ["U1", ""], "name": ["甲厂", "乙厂"],
                        "lon": [116.0, 113.0], "lat": [23.0, 23.0]})
    lon_499, lat_499, _ = geod.fwd(113.0, 23.0, 90, 499.0)
    lon_501, lat_501, _ = geod.fwd(113.0, 23.0, 90, 501.0)
    new = pd.DataFrame({"uscc": ["U1", "", "", "U9"],
                        "name": ["甲厂改名", "乙厂", "乙厂", "甲厂"],
                        "lon": [110.0, lon_501, lon_499, 116.0], "lat": [21.0, lat_501,
                                                                         lat_499, 23.0]})
    got = match_enterprises(cur, new, max_distance_m=500)
    # code wins whatever the name and place; 乙厂 at 499 m continues case 2, at 501 m not;
    # an enterprise with another code but case 1's name is not matched (case 1 taken)
    assert list(got) == [1.0, pytest.approx(np.nan, nan_ok=True), 2.0,
                         pytest.approx(np.nan, nan_ok=True)]


def test_second_load_keeps_cases_and_reports_verdict_changes() -> None:
    res = _open()
    cur = _state(res.events, res.new_cases, date(2019, 9, 1))
    second = _enterprises([
        # U1 moved into a park: no longer shutdown
        ("U1", "潮南甲印染厂", "dyeing", "basin_standard", "dyeing_basin_standard_lianjiang",
         "lianjiang", 116.43, 23.25),
        # the ceramics plant, still without code, re-geocoded 100 m away
        ("", "无码陶瓷厂", "ceramics", "shutdown", "ceramic_tile_line_lt_1m_m2", "", 113.101,
         23.02),
        # a new one
        ("U5", "新印染厂", "dyeing", "basin_standard", "dyeing_basin_standard_lianjiang",
         "lianjiang", 116.5, 23.3),
    ])  # U2 is absent from this load
    res2 = sync_events(cur, second, load_id=2, as_of=date(2019, 9, 1), recorded_by="t",
                       next_case_id=4, recorded_at=T0)
    assert res2.counts == {"opened": 1, "continued": 2, "changed": 2, "verdict_changed": 1,
                           "absent": 1}
    v = res2.changes[res2.changes["field"] == "verdict"].iloc[0]
    assert (v["case_id"], v["before"], v["after"]) == (1, "shutdown", "basin_standard")
    moved = res2.changes[res2.changes["case_id"] == 3]
    assert set(moved["field"]) == {"lon"}
    events = pd.concat([res.events, res2.events], ignore_index=True)
    cases = pd.concat([res.new_cases, res2.new_cases], ignore_index=True)
    before = _state(events, cases, date(2019, 8, 31)).set_index("case_id")
    after = _state(events, cases, date(2019, 9, 1)).set_index("case_id")
    assert 4 not in before.index and after.loc[4, "name"] == "新印染厂"
    assert before.loc[1, "verdict"] == "shutdown" and after.loc[1, "verdict"] == "basin_standard"
    assert after.loc[2, "present"] == "0" and before.loc[2, "present"] == "1"


# --------------------------------------------------------------------------- workflow


def _case(**kw: object) -> dict[str, object]:
    base = {"case_id": 7, "status": "identified", "opened_on": date(2019, 4, 1),
            "status_date": date(2019, 4, 1), "dimensions": "environment", "deadline": None,
            "extension_deadline": None, "documents": "", "equipment_action": ""}
    return base | kw


def test_steps_outside_the_workflow_are_refused_with_the_allowed_ones() -> None:
    with pytest.raises(CaseError, match="cannot go from 'identified'.*allowed next: notified"):
        plan_change(_case(), CaseChange(case_id=7, on=date(2019, 5, 1), status="accepted"))
    with pytest.raises(CaseError, match="status 'done' is unknown"):
        plan_change(_case(), CaseChange(case_id=7, on=date(2019, 5, 1), status="done"))
    with pytest.raises(CaseError, match="finished"):
        plan_change(_case(status="closed"),
                    CaseChange(case_id=7, on=date(2019, 5, 1), status="accepted"))


def test_dates_may_not_go_back_or_into_the_future() -> None:
    with pytest.raises(CaseError, match="before the case's last status change on 2019-05-10"):
        plan_change(_case(status="notified", status_date=date(2019, 5, 10)),
                    CaseChange(case_id=7, on=date(2019, 5, 9), status="rectifying",
                               deadline=date(2019, 8, 1)))
    with pytest.raises(CaseError, match="in the future"):
        plan_change(_case(), CaseChange(case_id=7, on=date(2019, 5, 2), status="notified"),
                    today=date(2019, 5, 1))
    ok = plan_change(_case(), CaseChange(case_id=7, on=date(2019, 5, 1), status="notified"),
                     today=date(2019, 5, 1))
    assert ok == [{"field": "status", "before": "identified", "after": "notified"}]


def test_energy_rectification_at_most_six_months_then_one_extension_of_three() -> None:
    """二(一)2: 应在6个月内整改；…可提出不超过3个月的延期申请."""
    notified = _case(status="notified", dimensions="energy")
    on = date(2019, 5, 31)
    ok = plan_change(notified, CaseChange(case_id=7, on=on, status="rectifying",
                                          deadline=date(2019, 11, 30)))
    assert {"field": "deadline", "before": "", "after": "2019-11-30"} in ok
    with pytest.raises(CaseError, match="more than 6 months.*二\\(一\\)2"):
        plan_change(notified, CaseChange(case_id=7, on=on, status="rectifying",
                                         deadline=date(2019, 12, 1)))
    rect = _case(status="rectifying", dimensions="energy", status_date=on,
                 deadline=date(2019, 11, 30))
    ext = plan_change(rect, CaseChange(case_id=7, on=date(2019, 11, 1), status="rectifying",
                                       extension_deadline=date(2020, 2, 29)))
    assert ext[-1] == {"field": "extension_deadline", "before": "", "after": "2020-02-29"}
    with pytest.raises(CaseError, match="more than 3 months"):
        plan_change(rect, CaseChange(case_id=7, on=date(2019, 11, 1), status="rectifying",
                                     extension_deadline=date(2020, 3, 1)))
    with pytest.raises(CaseError, match="only one extension"):
        plan_change(rect | {"extension_deadline": date(2020, 1, 31)},
                    CaseChange(case_id=7, on=date(2019, 12, 1), status="rectifying",
                               extension_deadline=date(2020, 2, 15)))


def test_rectification_needs_a_future_deadline() -> None:
    notified = _case(status="notified")
    with pytest.raises(CaseError, match="deadline .* is required"):
        plan_change(notified, CaseChange(case_id=7, on=date(2019, 6, 1), status="rectifying"))
    with pytest.raises(CaseError, match="must be after the date"):
        plan_change(notified, CaseChange(case_id=7, on=date(2019, 6, 1), status="rectifying",
                                         deadline=date(2019, 6, 1)))


def test_closing_a_rectification_before_its_deadline_is_refused() -> None:
    rect = _case(status="rectifying", deadline=date(2019, 9, 1), status_date=date(2019, 6, 1))
    with pytest.raises(CaseError, match="逾期未整改"):
        plan_change(rect, CaseChange(case_id=7, on=date(2019, 9, 1), status="closed"))
    out = plan_change(rect, CaseChange(case_id=7, on=date(2019, 9, 2), status="closed"))
    assert out[0]["after"] == "closed"


def test_obsolete_equipment_is_dismantled_or_sealed_when_shut_down() -> None:
    """二(五)1: 拆除 where possible, otherwise 断水断电、封存."""
    tech = _case(status="notified", dimensions="technology")
    with pytest.raises(CaseError, match="dismantled \\(拆除\\) or sealed \\(封存\\)"):
        plan_change(tech, CaseChange(case_id=7, on=date(2019, 7, 1), status="shut_down"))
    with pytest.raises(CaseError, match="equipment_action 'burnt' is unknown"):
        plan_change(tech, CaseChange(case_id=7, on=date(2019, 7, 1), status="shut_down",
                                     equipment_action="burnt"))
    out = plan_change(tech, CaseChange(case_id=7, on=date(2019, 7, 1), status="shut_down",
                                       equipment_action="sealed", capacity=600000,
                                       documents=["封存记录"]))
    assert [o["field"] for o in out] == ["status", "equipment_action", "capacity", "documents"]
    assert out[-1]["after"] == '["封存记录"]'


def test_a_change_that_changes_nothing_is_refused() -> None:
    with pytest.raises(CaseError, match="changes nothing"):
        plan_change(_case(), CaseChange(case_id=7, on=date(2019, 5, 1)))


def test_batch_applies_rows_in_order_and_reports_refused_ones() -> None:
    res = _open()
    cur = _state(res.events, res.new_cases, date(2019, 4, 1))
    changes = [
        CaseChange(case_id=2, on=date(2019, 4, 10), status="notified"),
        CaseChange(case_id=2, on=date(2019, 4, 20), status="rectifying",
                   deadline=date(2019, 7, 31)),
        CaseChange(case_id=2, on=date(2019, 4, 15), note="late entry"),  # allowed: no status
        CaseChange(case_id=99, on=date(2019, 4, 20), status="notified"),
        CaseChange(case_id=3, on=date(2019, 4, 20), status="shut_down"),  # no 拆除/封存
    ]
    events, rejected = apply_changes(cur, changes, recorded_by="me", source="import:x.xlsx",
                                     rows=[2, 3, 4, 5, 6], recorded_at=T0)
    assert list(rejected["row"]) == [5, 6]
    assert list(rejected["reason"]) == ["case_not_found", "change_refused"]
    assert list(events["field"]) == ["status", "status", "deadline", "note"]
    assert (events["recorded_by"] == "me").all() and (events["source"] == "import:x.xlsx").all()


# --------------------------------------------------------------------------- states


def test_state_at_a_date_overdue_from_the_day_after_the_deadline() -> None:
    res = _open()
    cur = _state(res.events, res.new_cases, date(2019, 4, 1))
    events, _ = apply_changes(cur, [
        CaseChange(case_id=2, on=date(2019, 4, 10), status="notified"),
        CaseChange(case_id=2, on=date(2019, 4, 20), status="rectifying",
                   deadline=date(2019, 7, 31)),
        CaseChange(case_id=3, on=date(2019, 5, 1), status="shut_down",
                   equipment_action="dismantled", capacity=800000),
        CaseChange(case_id=3, on=date(2019, 6, 1), status="accepted"),
    ], recorded_by="me", source="api", recorded_at=T0)
    all_ev = pd.concat([res.events, events], ignore_index=True)
    on_deadline = _state(all_ev, res.new_cases, date(2019, 7, 31)).set_index("case_id")
    after = _state(all_ev, res.new_cases, date(2019, 8, 1)).set_index("case_id")
    assert not on_deadline.loc[2, "overdue"] and after.loc[2, "overdue"]
    assert after.loc[2, "days_overdue"] == 1
    may = _state(all_ev, res.new_cases, date(2019, 5, 15)).set_index("case_id")
    assert may.loc[3, "status"] == "shut_down" and may.loc[3, "exited_on"] == date(2019, 5, 1)
    june = _state(all_ev, res.new_cases, date(2019, 6, 1)).set_index("case_id")
    assert june.loc[3, "status"] == "accepted" and june.loc[3, "exited"]
    assert not _state(all_ev, res.new_cases, date(2019, 4, 30)).set_index(
        "case_id").loc[3, "exited"]
    s = summary(june.reset_index(), by="dimensions").set_index("dimensions")
    assert s.loc["technology", "exited"] == 1
    assert s.loc["technology", "capacity_exited"] == "800000 平方米/年"
    assert s.loc["environment", "cases"] == 2


def test_summary_rejects_unknown_grouping() -> None:
    with pytest.raises(CaseError, match="by: unknown column 'planet'"):
        summary(pd.DataFrame({"status": []}), by="planet")


def test_initial_status_is_the_first_of_the_catalog() -> None:
    assert case_spec().initial_status == "identified"
