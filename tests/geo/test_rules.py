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
import _witness
from layers.catalog import AS_OF as AS_OF_TOKEN
from layers.catalog import (
    AnyOf,
    Predicate,
    Rule,
    field_vocabulary,
    industries,
    parse_rule_catalog,
    rule_catalog_document,
    rules,
)

CAT = rules()
AS_OF = date(2019, 6, 30)
INDUSTRY_IDS = [i.id for i in industries()]
BASE = {"basin_id": "", "region_id": "", "park_id": "", "city": "", "district": ""}


# ------------------------------------------------------------------ witnesses from the data
ENT_RULES = [r for r in CAT.rules if r.scope == "enterprise"]


def _violate(p: Predicate) -> Any:
    if p.op in ("eq", "in"):
        spec = field_vocabulary().get(p.field)
        if spec is not None and spec.kind == "bool":
            return not p.value
        return "__other__"
    if p.op == "contains":
        return "__other__"
    if p.op == "not_empty":
        return ""
    if p.op in ("ne", "not_in"):
        return p.value if p.op == "ne" else p.value[0]  # type: ignore[index]
    if p.op == "is_empty":
        return "x"
    if isinstance(p.value, date) or p.value == AS_OF_TOKEN:
        day = AS_OF if p.value == AS_OF_TOKEN else p.value
        return pd.Timestamp(day) + pd.Timedelta(days=0 if p.op == "lt" else 1)
    v = float(p.value)  # type: ignore[arg-type]
    # exactly at the boundary where that is outside ("lt 3" at 3), else just outside it
    return {"lt": v, "le": v + 0.001, "gt": v, "ge": v - 0.001}[p.op]


def witness(rule: Rule) -> dict[str, Any]:
    """An enterprise row (canonical values) under which an enterprise rule matches."""
    w = _witness.witness(rule)
    row: dict[str, Any] = {**BASE, "industry_id": w.industry_id, **w.location}
    for k, v in w.enterprise.items():
        row[k] = pd.Timestamp(v) if isinstance(v, date) else v
    return row


_predicates = _witness.predicates


def _ids(frame: pd.DataFrame) -> list[list[str]]:
    return [[x for x in s.split(LIST_SEP) if x] for s in frame["rule_ids"]]


# ------------------------------------------------------------------ tests
@pytest.mark.parametrize("rule", ENT_RULES, ids=lambda r: r.id)
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


@pytest.mark.parametrize("rule", ENT_RULES, ids=lambda r: r.id)
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
    out = apply_rules(pd.DataFrame([{**BASE, "industry_id": "flat_glass"}]), as_of=AS_OF)
    assert out["verdict"].iloc[0] == CAT.default_verdict == "no_action"
    assert tuple(out[["standards", "rule_ids", "reasons", "deadline", "deadline_status",
                      "price_measures", "units"]].iloc[0]) == ("",) * 7
    assert out["unit_count"].iloc[0] == 0
    assert list(out.columns[-len(RULES_COLUMNS):]) == list(RULES_COLUMNS)


def test_as_of_before_effective_disables_rules() -> None:
    row = {**BASE, "industry_id": "dyeing", "basin_id": "lianjiang", "park_id": ""}
    lj = next(r for r in CAT.rules if r.verdict == "shutdown" and "dyeing" in r.industries)
    before = apply_rules(pd.DataFrame([row]), as_of=lj.effective - timedelta(days=1))
    on = apply_rules(pd.DataFrame([row]), as_of=lj.effective)
    assert lj.id not in _ids(before)[0]
    assert lj.id in _ids(on)[0]
    assert before["verdict"].iloc[0] != "shutdown"


def test_effective_filter_is_per_rule() -> None:
    raw = copy.deepcopy(rule_catalog_document())
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
    df = pd.DataFrame({"industry_id": ["flat_glass", "tanning", "paper", None]})
    out = apply_rules(df, as_of=AS_OF)
    assert (out["verdict"] == "no_action").all()
    assert len(apply_rules(df.iloc[:0], as_of=AS_OF)) == 0


def test_numeric_fields_given_as_text_are_compared_as_numbers() -> None:
    raw = copy.deepcopy(rule_catalog_document())
    raw["rule"] = [{**raw["rule"][0], "id": "big", "when": [
        {"field": "annual_output_t", "op": "ge", "value": 10}]}]
    cat = parse_rule_catalog(raw)
    df = pd.DataFrame({"industry_id": ["paper"] * 4,
                       "annual_output_t": ["12", " 10 ", "9.99", "不详"]})
    ids = _ids(apply_rules(df, catalog=cat, as_of=AS_OF))
    assert ids == [["big"], ["big"], [], []]


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
            "discharge_permit": pd.array(rng.choice([True, False, None], n).tolist(),
                                         dtype="boolean"),
            "emission_exceedance": pd.array(rng.choice([True, False, None], n).tolist(),
                                            dtype="boolean"),
            "exceedance_severe": pd.array(rng.choice([True, None], n).tolist(), dtype="boolean"),
            "status": rng.choice(["", "operating", "closed"], n),
            "quality_result": rng.choice(["", "pass", "fail"], n),
            "quality_recheck": rng.choice(["", "pass", "fail"], n),
            "quality_deadline": pd.to_datetime(rng.choice(["2019-01-01", "2019-12-31", None], n)),
            "products": rng.choice(["", "P·C 32.5复合硅酸盐水泥", "地条钢", "P.O 42.5"], n),
        }
    )
    masks = rule_masks(df, as_of=AS_OF)
    ids = _ids(apply_rules(df, as_of=AS_OF))
    for i in rng.choice(n, 120, replace=False):
        one = _ids(apply_rules(df.iloc[[i]], as_of=AS_OF))[0]
        assert one == ids[i]
        assert sorted(one) == sorted(k for k, m in masks.items() if m[i])


def test_more_than_64_rules() -> None:
    raw = copy.deepcopy(rule_catalog_document())
    template = raw["rule"][0]
    raw["rule"] = [
        {**copy.deepcopy(template), "id": f"r{i}",
         "when": [{"field": "annual_output_t", "op": "ge", "value": i}]}
        for i in range(70)
    ]
    cat = parse_rule_catalog(raw)
    df = pd.DataFrame({"industry_id": ["paper"] * 3, "annual_output_t": [0, 65, 69]})
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
    far = {r["industry_id"]: r["verdict"] for r in rules_for_point(BASE, as_of=AS_OF)}
    # away from the priority areas only the whole-industry emission standards apply
    # (表2 第1项(2), 第2项(1), 第8项(1), 第11项)
    whole = {"steel", "cement", "lead_acid_battery", "small_coal_power"}
    assert {i for i, v in far.items() if v != "no_action"} == whole
    assert {far[i] for i in whole} == {"emission_standard"}


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
    assert list(ref.columns) == [*df.columns, "needs_review", "review_reasons", *RULES_COLUMNS]
    for encoded in (df.astype("category"), df.astype(object)):
        got = apply_rules(encoded, as_of=AS_OF)
        for col in RULES_COLUMNS:
            assert got[col].tolist() == ref[col].tolist(), col
    assert ref["verdict"].nunique() > 2  # the frame exercises several rules


# ------------------------------------------------------------------ boundary semantics
# Every order op, exactly at its boundary and just beside it, on each evaluation path
# (float column, text column parsed per distinct value, datetime column): a "<" written as
# "<=" (or the reverse) anywhere fails here.
ORDER_CASES = [
    # op, boundary, (just below, at, just above) -> expected
    ("lt", 3.0, (True, False, False)),
    ("le", 400.0, (True, True, False)),
    ("gt", 15.0, (False, False, True)),
    ("ge", 10.0, (False, True, True)),
]


def _one_rule_catalog(field: str, op: str, value: Any) -> Any:
    raw = copy.deepcopy(rule_catalog_document())
    raw["rule"] = [{**raw["rule"][0], "id": "probe",
                    "when": [{"field": field, "op": op, "value": value}]}]
    return parse_rule_catalog(raw)


@pytest.mark.parametrize(("op", "bound", "want"), ORDER_CASES)
@pytest.mark.parametrize("encoding", ["float", "text", "category"])
def test_order_ops_at_the_boundary(op: str, bound: float, want: tuple[bool, ...],
                                   encoding: str) -> None:
    cat = _one_rule_catalog("annual_output_t", op, bound)
    values = [bound - 0.001, bound, bound + 0.001]
    col: Any = pd.Series(values)
    if encoding == "text":
        col = pd.Series([f"{v:g}" for v in values], dtype=object)
    elif encoding == "category":
        col = pd.Series([f"{v:g}" for v in values]).astype("category")
    df = pd.DataFrame({"industry_id": "paper", "annual_output_t": col})
    got = tuple("probe" in ids for ids in _ids(apply_rules(df, catalog=cat, as_of=AS_OF)))
    assert got == want


@pytest.mark.parametrize(("op", "want"), [("lt", (True, False, False)), ("le", (True, True, False)),
                                          ("gt", (False, False, True)), ("ge", (False, True, True))])
@pytest.mark.parametrize("as_date", [True, False])
def test_date_order_ops_at_the_boundary(op: str, want: tuple[bool, ...], as_date: bool) -> None:
    day = date(2019, 7, 15)
    cat = _one_rule_catalog("quality_deadline", op, day)
    days = [day - timedelta(days=1), day, day + timedelta(days=1)]
    col = pd.to_datetime(days) if as_date else pd.Series([d.isoformat() for d in days], dtype=object)
    df = pd.DataFrame({"industry_id": "paper", "quality_deadline": col})
    got = tuple("probe" in ids for ids in _ids(apply_rules(df, catalog=cat, as_of=AS_OF)))
    assert got == want


def test_as_of_token_compares_with_the_evaluation_date() -> None:
    cat = _one_rule_catalog("quality_deadline", "lt", "@as_of")
    df = pd.DataFrame({"industry_id": "paper",
                       "quality_deadline": pd.to_datetime(["2019-06-29", "2019-06-30", None])})
    assert [("probe" in x) for x in _ids(apply_rules(df, catalog=cat, as_of=AS_OF))] == \
        [True, False, False]


def test_test_value_rejects_unknown_ops_and_booleans_as_numbers() -> None:
    from geo.rules import _test_value

    with pytest.raises(ValueError, match="unknown predicate op"):
        _test_value(1.0, "lte", 2)
    assert not _test_value(np.True_, "le", 400)  # a flag is not the number 1
    assert not _test_value(True, "ge", 0)
    assert _test_value("400", "le", 400) and not _test_value("400", "lt", 400)
    assert _test_value("P·C 32.5", "contains", ["p.c32.5"])
