"""The enforcement-workflow catalogs: limits with sources, statuses, calendar, criteria.

Where a catalog quotes the plan (``citation_text``), the quotation is the oracle for the
structured values beside it (dates, departments).
"""

from __future__ import annotations

import re
from datetime import date

import pytest

from geo.errors import ReferenceDataError
from layers.casework import (
    Limit,
    calendar_spec,
    case_spec,
    limit_catalog,
    monitoring_spec,
)
from layers.catalog import read_data_toml, rules, standards


def test_every_sourced_limit_names_its_source_and_where_it_was_read() -> None:
    cat = limit_catalog()
    sourced = [x for x in cat.limits if x.status == "sourced"]
    assert sourced, "no sourced limit at all"
    for lim in sourced:
        assert lim.standard in lim.source, f"{lim}: source must name the standard"
        assert re.search(r"https?://|GitHub file id", lim.verified_by), lim
    for lim in cat.limits:
        if lim.status == "unsourced":
            assert lim.value is None and lim.low is None and lim.note


def test_unsourced_limit_with_a_value_is_refused() -> None:
    with pytest.raises(ValueError, match="unsourced limit carries no value"):
        Limit(standard="X", pollutant="cod", status="unsourced", value=80, note="n")
    with pytest.raises(ValueError, match="needs source and verified_by"):
        Limit(standard="X", pollutant="cod", status="sourced", value=80)


def test_basin_standards_are_the_ones_the_rules_cite_and_have_no_invented_values() -> None:
    cat = limit_catalog()
    basin = {s.code for s in cat.standards if s.kind == "basin"}
    assert basin == {s.code for s in standards() if s.basins}
    for lim in cat.limits:
        if lim.standard in basin:
            assert lim.status == "unsourced", f"{lim.standard} table was not located"


def test_gb3544_values_match_the_standard_text_as_transcribed() -> None:
    """GB 3544-2008 表2 (制浆 / 联合 / 造纸): COD 100/90/80, 氨氮 12/8/8, 总磷 0.8."""
    got = {(x.pollutant, x.subcategory): x.value for x in limit_catalog().limits
           if x.standard == "GB 3544-2008"}
    assert got[("cod", "制浆企业")] == 100
    assert got[("cod", "制浆和造纸联合生产企业")] == 90
    assert got[("cod", "造纸企业")] == 80
    assert got[("nh3n", "制浆企业")] == 12 and got[("tp", "")] == 0.8


def test_pollutants_in_limits_and_criteria_are_known() -> None:
    spec = monitoring_spec()
    classes = {p.klass for p in spec.pollutants.values()}
    for c in spec.serious:
        assert c.pollutant_class == "*" or c.pollutant_class in classes
        assert c.basis and c.basis_text and c.verified_by
    assert spec.unit_factor("sb", "μg/L") == pytest.approx(0.001)
    assert spec.unit_factor("cod", "倍") is None


def test_statuses_form_a_workflow_reaching_an_end_from_the_start() -> None:
    spec = case_spec()
    reach, todo = set(), [spec.initial_status]
    while todo:
        s = todo.pop()
        if s not in reach:
            reach.add(s)
            todo.extend(spec.status(s).next)
    assert reach == set(spec.statuses)
    ends = {s.id for s in spec.statuses.values() if not s.next}
    assert {"closed", "accepted"} <= ends
    assert {s.id for s in spec.statuses.values() if s.exit} == {"shut_down", "closed"}


def test_departments_are_the_ones_the_plan_names_per_dimension() -> None:
    """二(一)…(五) headings: 省工业和信息化厅、发展改革委、能源局; 省生态环境厅; 省市场监管局;
    省应急管理厅; 工信/发改/能源 again for technology."""
    dims = case_spec().dimensions
    assert dims["environment"].department == "省生态环境厅"
    assert dims["quality"].department == "省市场监管局"
    assert dims["safety"].department.startswith("省应急管理厅")
    for d in ("energy", "technology"):
        assert set(dims[d].department.split("、")) == {"省工业和信息化厅", "省发展改革委",
                                                      "省能源局"}
    assert dims["energy"].rectify_months == 6 and dims["energy"].extension_months == 3


def test_every_rule_citation_maps_to_exactly_one_dimension() -> None:
    dims = case_spec().dimensions.values()
    for rule in rules().rules:
        hits = [d.id for d in dims if any(rule.citation.startswith(c) for c in d.citations)]
        assert len(hits) == 1, f"{rule.id} ({rule.citation}) -> {hits}"


def test_calendar_dates_are_the_plans() -> None:
    """四(三): 4月15日、6月30日、9月30日; 2020年1月15日、1月31日; 三(四): 2019年12月31日."""
    due = {i.id: i.due for i in calendar_spec().items}
    assert due["q1_department_lists"] == date(2019, 4, 15)
    assert due["q2_department_lists"] == date(2019, 6, 30)
    assert due["q3_department_lists"] == date(2019, 9, 30)
    assert due["technology_exit_publication"] == date(2019, 12, 31)
    assert due["local_year_end_summary"] == date(2020, 1, 15)
    assert due["provincial_year_end_summary"] == date(2020, 1, 31)
    lists = calendar_spec().lists
    for lid in ("task_list", "technology_exit", "rectification", "closed_after_rectification",
                "exceedance", "serious_exceedance", "coal_boiler_exit",
                "department_quarterly", "year_end_summary"):
        assert lid in lists
    assert lists["technology_exit"].due == date(2019, 12, 31)


def test_a_calendar_item_naming_an_unknown_list_fails_loudly(monkeypatch) -> None:
    import layers.casework as cw

    raw = dict(read_data_toml("calendar.toml"))
    raw["item"] = [*raw["item"], {"id": "x", "due": date(2019, 1, 1), "title_zh": "x",
                                  "list": "nope", "departments": [], "to": "x",
                                  "citation": "x"}]
    cw.calendar_spec.cache_clear()
    monkeypatch.setattr(cw, "read_data_toml", lambda name: raw)
    try:
        with pytest.raises(ReferenceDataError, match="item x: unknown list nope"):
            cw.calendar_spec()
    finally:
        cw.calendar_spec.cache_clear()


def _quoted_dates(text: str) -> set[date]:
    """Dates written 2019年4月15日 / 6月30日 (year carried over) in a quotation."""
    out, year = set(), None
    for y, m, d in re.findall(r"(?:(\d{4})年)?(\d{1,2})月(\d{1,2})日", text):
        year = int(y) if y else year
        out.add(date(year, int(m), int(d)))
    return out


def test_due_dates_equal_the_dates_in_the_quoted_plan_text() -> None:
    spec = calendar_spec()
    quarterly = _quoted_dates(spec.lists["department_quarterly"].citation_text)
    items = {i.due for i in spec.items if i.list == "department_quarterly"}
    assert items == quarterly == {date(2019, 4, 15), date(2019, 6, 30), date(2019, 9, 30)}
    year_end = _quoted_dates(spec.lists["year_end_summary"].citation_text)
    assert {i.due for i in spec.items if i.list == "year_end_summary"} == year_end
    assert spec.lists["technology_exit"].due in _quoted_dates(
        spec.lists["technology_exit"].citation_text)
