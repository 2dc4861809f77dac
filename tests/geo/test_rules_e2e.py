"""Every catalog rule, end to end: registry + equipment files (CSV and XLSX) to its verdict.

One file pair holds one enterprise per rule, built from the rule's witness (``_witness.py``):
written with Chinese headers and units in the headers by real writers, read back by
``run_pipeline``. A second pair holds the same enterprises with each rule's conditions
removed (blank inputs), where the rule must not fire: unknown data never triggers a rule.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from geo.pipeline import run_pipeline
from geo.schema import LIST_SEP, REASON_SEP
from layers.catalog import rules

from _witness import AS_OF, Case, case_of, predicates, write_files

CAT = rules()
RANK = {v.id: v.rank for v in CAT.verdicts}


def _cases() -> list[Case]:
    return [case_of(r, f"R{k:03d}") for k, r in enumerate(CAT.rules)]


@pytest.fixture(scope="module", params=["csv", "xlsx"])
def run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp(request.param)
    cases = _cases()
    registry, equipment = write_files(cases, folder, request.param)
    res = run_pipeline(registry, equipment=equipment, as_of=AS_OF)
    return cases, res


def test_every_row_of_both_files_is_accounted_for(run) -> None:
    cases, res = run
    assert len(res.enterprises) == len(cases), res.rejected.to_string()
    assert res.rejected.empty, res.rejected.to_string()
    assert len(res.units) == sum(len(c.units) for c in cases) == res.equipment_rows


@pytest.mark.parametrize("k", range(len(CAT.rules)), ids=[r.id for r in CAT.rules])
def test_rule_fires_from_files(run, k: int) -> None:
    rule = CAT.rules[k]
    cases, res = run
    ent = res.enterprises.set_index("name").loc[f"测试{cases[k].key}有限公司"]
    ids = ent["rule_ids"].split(LIST_SEP)
    assert rule.id in ids, (rule.id, ent["rule_ids"])
    matched = [r for r in CAT.rules if r.id in ids]
    assert ent["verdict"] == min(matched, key=lambda r: RANK[r.verdict]).verdict
    sentences = ent["reasons"].split(REASON_SEP)
    assert any(s.startswith(rule.reason_zh) for s in sentences)
    if rule.scope == "unit":
        # the reasons name the unit with the rule's citation; the unit's row carries the rule
        named = ent["reasons"].split("涉及设备：")[-1]
        mine = next(u for u in re.split(r"(?<=）)、", named)
                    if u.startswith(f"{cases[k].key}-1号（"))
        assert f"〔{rule.citation}〕" in mine and ent["units"] == named
        unit = res.units.set_index("unit_id").loc[f"{cases[k].key}-1号"]
        assert rule.id in unit["rule_ids"].split(LIST_SEP)
    for code in rule.standards:
        assert code in ent["standards"].split(LIST_SEP)
    for m in rule.measures:
        assert m in ent["price_measures"].split(LIST_SEP)
    if rule.review_code and rule.review_code != "unit_data_issue":
        assert ent["needs_review"] and rule.review_code in ent["review_reasons"]


def test_no_rule_fires_on_blank_inputs(tmp_path: Path) -> None:
    """The same enterprises and units with every rule input blank: only location rules and
    whole-industry rules (no conditions) may still apply."""
    blank = []
    for c in _cases():
        units = [{"unit_type": "other"} for _u in c.units]
        blank.append(Case(c.key, c.industry_id, {}, units, c.location))
    registry, equipment = write_files(blank, tmp_path, "csv")
    res = run_pipeline(registry, equipment=equipment, as_of=AS_OF)
    assert len(res.enterprises) == len(blank)
    location = ("industry_id", "city", "district", "basin_id", "region_id", "park_id")
    unconditional = {
        r.id for r in CAT.rules
        if r.scope == "enterprise" and all(p.field in location for p in predicates(r.when))
    }
    fired = {i for s in res.enterprises["rule_ids"] for i in s.split(LIST_SEP) if i}
    assert fired <= unconditional, fired - unconditional
    assert (res.units["verdict"] == "no_action").all()


def test_effective_dates_decide_which_rules_apply(run, tmp_path: Path) -> None:
    """--as-of before 2019: the plan's rules are not in force yet."""
    cases, _res = run
    registry, equipment = write_files(cases[:20], tmp_path, "csv")
    early = run_pipeline(registry, equipment=equipment, as_of=pd.Timestamp("2018-12-31").date())
    assert (early.enterprises["verdict"] == "no_action").all()
    assert (early.enterprises["deadline_status"] == "").all()
