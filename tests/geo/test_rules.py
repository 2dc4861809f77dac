"""Tests for geo.rules: every catalog rule triggers exactly when its conditions hold."""

from __future__ import annotations

import copy
from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from geo.rules import apply_rules, rule_masks, rules_for_point
from geo.schema import LIST_SEP, REASON_SEP, RULES_COLUMNS
from layers.catalog import (
    AllOf,
    AnyOf,
    Condition,
    Predicate,
    Rule,
    industries,
    parse_rule_catalog,
    read_data_toml,
    rules,
)

CAT = rules()
AS_OF = date(2019, 6, 30)
INDUSTRY_IDS = [i.id for i in industries()]
BASE = {"basin_id": "", "region_id": "", "park_id": "", "city": "", "district": ""}


# ------------------------------------------------------------------ witnesses from the data
def _predicates(conds: list[Condition]) -> list[Predicate]:
    """Predicates a witness must satisfy (first branch of every `any`)."""
    out: list[Predicate] = []
    for c in conds:
        if isinstance(c, Predicate):
            out.append(c)
        elif isinstance(c, AnyOf):
            out += _predicates([c.any[0]])
        elif isinstance(c, AllOf):
            out += _predicates(c.all)
    return out


def _satisfy(preds: list[Predicate]) -> Any:
    """A value satisfying all predicates on one field."""
    lo, hi = -1e12, 1e12
    numeric = False
    for p in preds:
        if p.op == "eq":
            return p.value
        if p.op == "in":
            return p.value[0]  # type: ignore[index]
        if p.op == "is_empty":
            return ""
        if p.op in ("ne", "not_in"):
            return "__other__"
        if p.op == "not_empty":
            return "x"
        numeric = True
        v = float(p.value)  # type: ignore[arg-type]
        if p.op in ("gt", "ge") and v >= lo:
            lo = v
        if p.op in ("lt", "le") and v <= hi:
            hi = v
    assert numeric
    return (lo + hi) / 2 if hi < 1e12 else lo + 1


def _violate(p: Predicate) -> Any:
    if p.op in ("eq", "in", "not_empty"):
        return "__other__" if p.op != "not_empty" else ""
    if p.op in ("ne", "not_in"):
        return p.value if p.op == "ne" else p.value[0]  # type: ignore[index]
    if p.op == "is_empty":
        return "x"
    v = float(p.value)  # type: ignore[arg-type]
    return {"lt": v, "le": v + 1, "gt": v, "ge": v - 1}[p.op]


def witness(rule: Rule) -> dict[str, Any]:
    row: dict[str, Any] = dict(BASE)
    row["industry_id"] = INDUSTRY_IDS[0] if "*" in rule.industries else rule.industries[0]
    by_field: dict[str, list[Predicate]] = {}
    for p in _predicates(rule.when):
        by_field.setdefault(p.field, []).append(p)
    for field, preds in by_field.items():
        row[field] = _satisfy(preds)
    return row


def _ids(frame: pd.DataFrame) -> list[list[str]]:
    return [[x for x in s.split(LIST_SEP) if x] for s in frame["rule_ids"]]


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("rule", CAT.rules, ids=lambda r: r.id)
def test_rule_triggers_on_its_witness(rule: Rule) -> None:
    out = apply_rules(pd.DataFrame([witness(rule)]), as_of=AS_OF)
    ids = _ids(out)[0]
    assert rule.id in ids
    rank = {v.id: v.rank for v in CAT.verdicts}
    matched = [r for r in CAT.rules if r.id in ids]
    assert out["verdict"].iloc[0] == min(matched, key=lambda r: rank[r.verdict]).verdict
    for code in rule.standards:
        assert code in out["standards"].iloc[0].split(LIST_SEP)
    assert rule.reason_zh in out["reasons"].iloc[0].split(REASON_SEP)


@pytest.mark.parametrize("rule", CAT.rules, ids=lambda r: r.id)
def test_rule_not_triggered_when_a_condition_fails(rule: Rule) -> None:
    base = witness(rule)
    rows = []
    # a top-level condition violated, missing (NaN) or its column absent
    for cond in rule.when:
        for pred in _predicates([cond]) if isinstance(cond, Predicate) else []:
            rows.append({**base, pred.field: _violate(pred)})
            rows.append({**base, pred.field: np.nan})
        if isinstance(cond, AnyOf):
            bad = dict(base)
            for p in _predicates(cond.any):  # break every branch's first predicate
                bad[p.field] = _violate(p)
            for alt in cond.any[1:]:
                for p in _predicates([alt]):
                    bad[p.field] = _violate(p)
            rows.append(bad)
    # wrong industry
    others = [] if "*" in rule.industries else [i for i in INDUSTRY_IDS if i not in rule.industries]
    rows.append({**base, "industry_id": others[0] if others else "not_a_key_industry"})
    rows.append({**base, "industry_id": np.nan})
    out = apply_rules(pd.DataFrame(rows), as_of=AS_OF)
    assert all(rule.id not in ids for ids in _ids(out))
    for field in {p.field for p in _predicates(rule.when)}:
        dropped = pd.DataFrame([{k: v for k, v in base.items() if k != field}])
        assert rule.id not in _ids(apply_rules(dropped, as_of=AS_OF))[0]


def test_strongest_verdict_wins_for_lianjiang_dyeing_outside_park() -> None:
    row = {**BASE, "industry_id": "dyeing", "basin_id": "lianjiang", "park_id": ""}
    out = apply_rules(pd.DataFrame([row]), as_of=AS_OF)
    ids = _ids(out)[0]
    verdicts = {r.verdict for r in CAT.rules if r.id in ids}
    assert {"shutdown", "basin_standard", "priority_supervision"} <= verdicts
    assert out["verdict"].iloc[0] == "shutdown"
    # reasons are ordered strongest first
    first = next(r for r in CAT.rules if r.id == ids[0])
    assert first.verdict == "shutdown"
    assert out["reasons"].iloc[0].startswith(first.text_zh)
    # inside a park the shutdown rule drops and the basin standard is the verdict
    inside = apply_rules(pd.DataFrame([{**row, "park_id": "chaonan"}]), as_of=AS_OF)
    assert inside["verdict"].iloc[0] == "basin_standard"


def test_no_match_gives_no_action_and_empty_strings() -> None:
    out = apply_rules(pd.DataFrame([{**BASE, "industry_id": "steel"}]), as_of=AS_OF)
    assert out["verdict"].iloc[0] == CAT.default_verdict == "no_action"
    assert tuple(out[["standards", "rule_ids", "reasons"]].iloc[0]) == ("", "", "")
    assert list(out.columns[-4:]) == list(RULES_COLUMNS)


def test_as_of_before_effective_disables_rules() -> None:
    row = {**BASE, "industry_id": "dyeing", "basin_id": "lianjiang", "park_id": ""}
    lj = next(r for r in CAT.rules if r.verdict == "shutdown" and "dyeing" in r.industries)
    before = apply_rules(pd.DataFrame([row]), as_of=lj.effective - timedelta(days=1))
    on = apply_rules(pd.DataFrame([row]), as_of=lj.effective)
    assert lj.id not in _ids(before)[0]
    assert lj.id in _ids(on)[0]
    assert before["verdict"].iloc[0] != "shutdown"


def test_effective_filter_is_per_rule() -> None:
    raw = copy.deepcopy(read_data_toml("rules.toml"))
    for r in raw["rule"]:
        if r["id"].startswith("dyeing_basin_standard"):
            r["effective"] = date(2030, 1, 1)
    cat = parse_rule_catalog(raw)
    row = {**BASE, "industry_id": "dyeing", "basin_id": "maozhou"}
    ids = _ids(apply_rules(pd.DataFrame([row]), catalog=cat, as_of=AS_OF))[0]
    assert not any(i.startswith("dyeing_basin_standard") for i in ids)
    assert any(i.startswith("dyeing_basin_standard") for i in _ids(
        apply_rules(pd.DataFrame([row]), catalog=cat, as_of=date(2030, 1, 1)))[0])


def test_missing_optional_fields_do_not_crash() -> None:
    df = pd.DataFrame({"industry_id": ["steel", "tanning", "paper", None]})
    out = apply_rules(df, as_of=AS_OF)
    assert (out["verdict"] == "no_action").all()
    assert len(apply_rules(df.iloc[:0], as_of=AS_OF)) == 0


def test_numeric_fields_given_as_text_are_compared_as_numbers() -> None:
    tann = next(r for r in CAT.rules if r.industries == ["tanning"])
    w = witness(tann)
    field = _predicates(tann.when)[0].field
    df = pd.DataFrame([{**w, field: str(w[field])}, {**w, field: "不详"}])
    ids = _ids(apply_rules(df, as_of=AS_OF))
    assert tann.id in ids[0] and tann.id not in ids[1]


def test_matches_row_by_row_reference_on_mixed_frame() -> None:
    rng = np.random.default_rng(7)
    n = 3000
    df = pd.DataFrame(
        {
            "industry_id": rng.choice([*INDUSTRY_IDS, ""], n),
            "basin_id": rng.choice(["", "lianjiang", "maozhou", "shima", "danshui"], n),
            "region_id": rng.choice(["", "guangfo"], n),
            "park_id": rng.choice(["", "p1"], n),
            "city": rng.choice(["", "深圳市", "广州市", "汕头市"], n),
            "coal_boiler_tph": np.where(rng.random(n) < 0.3, np.nan, rng.uniform(0, 100, n)),
        }
    )
    masks = rule_masks(df, as_of=AS_OF)
    ids = _ids(apply_rules(df, as_of=AS_OF))
    for i in rng.choice(n, 200, replace=False):
        one = _ids(apply_rules(df.iloc[[i]], as_of=AS_OF))[0]
        assert one == ids[i]
        assert sorted(one) == sorted(k for k, m in masks.items() if m[i])


def test_more_than_64_rules() -> None:
    raw = copy.deepcopy(read_data_toml("rules.toml"))
    template = raw["rule"][0]
    raw["rule"] = [
        {**copy.deepcopy(template), "id": f"r{i}", "when": [{"field": "k", "op": "ge", "value": i}]}
        for i in range(70)
    ]
    cat = parse_rule_catalog(raw)
    df = pd.DataFrame({"industry_id": ["paper"] * 3, "k": [0, 65, 69]})
    ids = _ids(apply_rules(df, catalog=cat, as_of=AS_OF))
    assert [len(x) for x in ids] == [1, 66, 70]
    assert ids[2][-1] == "r69"


def test_rules_for_point_covers_all_industries() -> None:
    res = rules_for_point({**BASE, "basin_id": "lianjiang", "industry_id": "ignored"}, as_of=AS_OF)
    assert [r["industry_id"] for r in res] == INDUSTRY_IDS
    by = {r["industry_id"]: r for r in res}
    assert by["dyeing"]["verdict"] == "shutdown"
    assert by["dyeing"]["verdict_label"] == CAT.verdict("shutdown").label_zh
    lj_std = next(s for r in CAT.rules if r.id.endswith("lianjiang") for s in r.standards)
    assert lj_std in by["paper"]["standards"]
    assert all("priority_area_supervision" in r["rule_ids"] for r in res)
    far = rules_for_point(BASE, as_of=AS_OF)
    assert {r["verdict"] for r in far} == {"no_action"}


def test_column_encodings_give_the_same_verdicts() -> None:
    rng = np.random.default_rng(11)
    n = 2000
    df = pd.DataFrame(
        {
            "industry_id": rng.choice(INDUSTRY_IDS, n),
            "basin_id": rng.choice(["", "lianjiang", "maozhou", "shima", "danshui"], n),
            "region_id": rng.choice(["", "guangfo"], n),
            "park_id": rng.choice(["", "p1"], n),
            "city": rng.choice(["", "深圳市", "广州市", "汕头市"], n),
        }
    )
    before = df.copy()
    ref = apply_rules(df, as_of=AS_OF)
    pd.testing.assert_frame_equal(df, before)  # the input is never modified
    assert list(ref.columns) == [*df.columns, *RULES_COLUMNS]
    for encoded in (df.astype("category"), df.astype(object)):
        got = apply_rules(encoded, as_of=AS_OF)
        for col in RULES_COLUMNS:
            assert got[col].tolist() == ref[col].tolist(), col
    assert ref["verdict"].nunique() > 2  # the frame exercises several rules
