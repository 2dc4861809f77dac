"""The seeded synthetic year: equipment verdicts, monitoring with exceedances in every basin,
and case changes that pass the workflow."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from geo.cases import apply_changes, exit_dates, latest_events, read_case_changes, states
from geo.cases import sync_events
from geo.monitoring import attach_enterprises, judge, read_monitoring
from geo.synthetic_year import (
    BASINS,
    synthetic_case_changes,
    synthetic_equipment,
    synthetic_monitoring,
    write_monitoring,
)


@pytest.fixture(scope="module")
def year_enterprises(sample_result) -> pd.DataFrame:
    return synthetic_equipment(sample_result.enterprises, seed=7)


def test_equipment_sizes_give_table5_verdicts_on_both_sides_of_the_threshold(
        year_enterprises) -> None:
    e = year_enterprises
    tiles = e["ceramic_tile_m2_per_year"]
    small, large = e[tiles < 1_000_000], e[tiles >= 1_000_000]
    assert len(small) and len(large)
    assert small["rule_ids"].str.contains("ceramic_tile_line_lt_1m_m2").all()
    assert small["verdict"].eq("shutdown").all()
    assert not large["rule_ids"].str.contains("ceramic_tile_line_lt_1m_m2").any()
    furnace = e["blast_furnace_m3"]
    assert e.loc[furnace.eq(400), "rule_ids"].str.contains("steel_blast_furnace").all()  # ≤ 400
    assert not e.loc[furnace.eq(450), "rule_ids"].str.contains("steel_blast_furnace").any()


def test_monitoring_is_seeded_and_exceeds_in_every_basin(tmp_path: Path, year_enterprises) -> None:
    a = synthetic_monitoring(year_enterprises, seed=3)
    b = synthetic_monitoring(year_enterprises, seed=3)
    pd.testing.assert_frame_equal(a, b)
    path = write_monitoring(a, tmp_path / "监测.csv")
    res = read_monitoring(path)
    assert len(res.rejected) == 5  # the deliberately bad rows the reader can see
    assert set(res.rejected["reason"]) == {"pollutant_unknown", "time_unparseable",
                                            "value_unparseable", "unit_incompatible"}
    matched, unmatched = attach_enterprises(res.accepted, year_enterprises)
    assert list(unmatched["reason"]) == ["enterprise_not_found"]
    j = judge(matched)
    exc = j[j["outcome"].isin(["exceeds", "exceeds_floor"])]
    assert set(BASINS) <= set(exc["basin_id"])
    assert (exc["multiple"] >= 3).any()  # some metal more than three times over


def test_case_changes_pass_the_workflow_when_imported(tmp_path: Path, year_enterprises) -> None:
    empty = pd.DataFrame(columns=["case_id", "uscc", "name", "lon", "lat", "present"])
    opened = sync_events(empty, year_enterprises, load_id=1, as_of=date(2019, 4, 1),
                         recorded_by="t", next_case_id=1)
    start = states(latest_events(opened.events), opened.new_cases, as_of=date(2019, 4, 1))
    sheet = synthetic_case_changes(start, seed=5)
    sheet.to_excel(tmp_path / "changes.xlsx", index=False)
    changes, rows, bad = read_case_changes(tmp_path / "changes.xlsx", current=start)
    assert bad.empty and len(changes) == len(sheet)
    events, refused = apply_changes(start, changes, recorded_by="t", source="sample", rows=rows,
                                    today=date(2020, 2, 1))
    assert refused.empty, refused["message"].head().tolist()
    all_ev = pd.concat([opened.events, events], ignore_index=True)
    year_end = states(latest_events(all_ev, date(2019, 12, 31)), opened.new_cases,
                      as_of=date(2019, 12, 31), exit_dates=exit_dates(all_ev, date(2019, 12, 31)))
    counts = year_end["status"].value_counts()
    assert counts["accepted"] > 0 and counts["closed"] > 0 and counts["shut_down"] > 0
    assert year_end["overdue"].any() and year_end["exited"].any()
    tech = year_end[year_end["dimensions"].str.contains("technology") & year_end["exited"]]
    assert tech["equipment_action"].isin(["sealed", "dismantled"]).all() and len(tech)
