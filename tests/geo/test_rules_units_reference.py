"""evaluate_rules with equipment units against a slow, obviously-correct per-unit reference.

The reference below is written from the catalog's documented semantics (geo.rules module
docstring, layers.catalog), one Python loop over enterprises and units, without any of the
engine's machinery (no factorisation, bitmasks, combinations or group joins). It runs on a
seeded synthetic registry + 设备清单 (a witness enterprise and unit per rule, bad rows, energy
records) read like ``run_pipeline`` reads files, on two evaluation dates.
"""

from __future__ import annotations

import math
import re
import unicodedata
from datetime import date
from typing import Any

import pandas as pd
import pytest

from geo.classify import classify
from geo.equipment import derive_unit_fields, join_units, read_equipment
from geo.geocoding import geocode
from geo.ingest import read_registry
from geo.pipeline import _outside_province
from geo.rules import evaluate_rules
from geo.schema import LIST_SEP, REASON_SEP
from geo.synthetic import synthetic_dataset, write_dataset
from layers.catalog import AS_OF, AllOf, AnyOf, Predicate, Rule, industries, rules

CAT = rules()
RANK = {v.id: v.rank for v in CAT.verdicts}
LABEL = {v.id: v.label_zh for v in CAT.verdicts}
MEASURE_REASON = {m.id: m.reason_zh for m in CAT.measures}
KNOWN_INDUSTRIES = {i.id for i in industries()}
TEXT_PARTS = ("unit_type_raw", "process", "product")  # what unit_text is made of


# ------------------------------------------------------------------ the reference


def _missing(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    return isinstance(v, float) and math.isnan(v)


def _norm(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"[·•・]", ".", re.sub(r"\s+", "", folded))


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(f) else f


def _day(v: Any) -> date | None:
    if isinstance(v, pd.Timestamp):
        return v.date()
    if isinstance(v, date):
        return v
    if isinstance(v, str):
        try:
            return date.fromisoformat(v.strip()[:10])
        except ValueError:
            return None
    return None


def _same(u: Any, v: Any) -> bool:
    if isinstance(v, bool) or isinstance(u, bool):
        return isinstance(u, bool) and u == v
    if isinstance(v, (int, float)):
        return _number(u) == float(v)
    if isinstance(v, date):
        return _day(u) == v
    return isinstance(u, str) and u.strip() == v


def _holds(p: Predicate, u: Any, as_of: date) -> bool:
    """One predicate on one known value."""
    v = as_of if p.value == AS_OF else p.value
    if p.op == "is_empty":
        return isinstance(u, str) and not u.strip()
    if p.op == "not_empty":
        return not (isinstance(u, str) and not u.strip())
    if p.op == "contains":
        return isinstance(u, str) and any(_norm(w) in _norm(u) for w in v)
    if p.op in ("eq", "ne", "in", "not_in"):
        hit = any(_same(u, x) for x in (v if isinstance(v, list) else [v]))
        return hit if p.op in ("eq", "in") else not hit
    left, right = (_day(u), v) if isinstance(v, date) else (_number(u), float(v))
    if left is None:
        return False
    return {"lt": left < right, "le": left <= right, "gt": left > right,
            "ge": left >= right}[p.op]


def _value(record: dict[str, Any], field: str) -> Any:
    if field == "unit_text" and "unit_text" not in record and "_unit" in record:
        parts = [record.get(c) for c in TEXT_PARTS]
        return " ".join(str(x) for x in parts if not _missing(x) and x != "")
    v = record.get(field)
    if isinstance(v, pd.Timestamp) and pd.isna(v):
        return None
    return None if _missing(v) else (bool(v) if type(v).__name__ == "bool_" else v)


def _cond(c: Any, record: dict[str, Any], as_of: date) -> bool:
    if isinstance(c, AnyOf):
        return any(_cond(x, record, as_of) for x in c.any)
    if isinstance(c, AllOf):
        return all(_cond(x, record, as_of) for x in c.all)
    v = _value(record, c.field)
    return v is not None and _holds(c, v, as_of)  # unknown data is never true


def _applies(rule: Rule, record: dict[str, Any], as_of: date) -> bool:
    ind = record.get("industry_id")
    if "*" in rule.industries:
        if ind not in KNOWN_INDUSTRIES:
            return False
    elif ind not in rule.industries:
        return False
    return all(_cond(c, record, as_of) for c in rule.when) and not any(
        _cond(c, record, as_of) for c in rule.unless)


def _deadline(matched: list[tuple[Rule, dict[str, Any]]], as_of: date) -> tuple[str, str]:
    """(deadline, status) from the rules carrying the strongest verdict."""
    if not matched:
        return "", ""
    best = min(RANK[r.verdict] for r, _rec in matched)
    driving = [(r, rec) for r, rec in matched if RANK[r.verdict] == best]
    if any(r.immediate for r, _rec in driving):
        return "", "immediate"
    days, undetermined = [], False
    for r, rec in driving:
        if r.deadline is not None:
            days.append(r.deadline)
        elif r.deadline_field is not None:
            d = _day(_value(rec, r.deadline_field))
            if d is None:
                undetermined = True
            else:
                days.append(d)
        elif r.verdict in ("shutdown", "rectify"):
            undetermined = True
    if days:
        first = min(days)
        return first.isoformat(), "pending" if first >= as_of else "overdue"
    return "", "undetermined" if undetermined else ""


def _ordered(rs: list[Rule]) -> list[Rule]:
    """Strongest verdict first; enterprise rules before unit rules; then catalog order."""
    pos = {r.id: k for k, r in enumerate(CAT.rules)}
    return sorted(rs, key=lambda r: (RANK[r.verdict], r.scope == "unit", pos[r.id]))


def _in_catalog_order(rs: list[Rule]) -> list[Rule]:
    pos = {r.id: k for k, r in enumerate(CAT.rules)}
    return sorted(rs, key=lambda r: pos[r.id])


def reference(ent: pd.DataFrame, units: pd.DataFrame, as_of: date) -> tuple[dict, dict]:
    """Per enterprise row and per unit (position): verdict, rule ids, reasons, deadline, status."""
    active = [r for r in CAT.rules if r.effective <= as_of]
    ent_rules = [r for r in active if r.scope == "enterprise"]
    unit_rules = [r for r in active if r.scope == "unit"]
    records = {int(rec["row"]): rec for rec in ent.to_dict("records")}
    per_unit: dict[int, dict[str, Any]] = {}
    units_of: dict[int, list[tuple[str, list[Rule], dict[str, Any]]]] = {}
    for k, u in enumerate(units.to_dict("records")):
        parent = records[int(u["enterprise_row"])]
        rec = {**parent, **{k: v for k, v in u.items() if not _missing(v)}, "_unit": True}
        for f in u:  # the unit's own blank value is its value (not its enterprise's)
            if _missing(u[f]) and f in parent and f not in ("industry_id", "city"):
                rec[f] = None
        hit = _ordered([r for r in unit_rules if _applies(r, rec, as_of)])
        dl, st = _deadline([(r, rec) for r in hit], as_of)
        per_unit[k] = {
            "verdict": hit[0].verdict if hit else CAT.default_verdict,
            "rule_ids": LIST_SEP.join(r.id for r in hit), "deadline": dl, "deadline_status": st,
        }
        units_of.setdefault(int(u["enterprise_row"]), []).append((u["unit_id"], hit, rec))
    per_ent: dict[int, dict[str, Any]] = {}
    for row, rec in records.items():
        own = [r for r in ent_rules if _applies(r, rec, as_of)]
        mine = units_of.get(row, [])
        via = {r.id: r for _uid, hit, _rec in mine for r in hit}
        hit = _ordered(own + list(via.values()))
        events = [(r, rec) for r in own] + [(r, urec) for _u, h, urec in mine for r in h]
        dl, st = _deadline(events, as_of)
        named = "、".join(
            uid + "（" + LABEL[h[0].verdict]
            + "".join(dict.fromkeys(f"〔{r.citation}〕" for r in _in_catalog_order(h))) + "）"
            for uid, h, _rec in mine if h
        )
        measures = list(dict.fromkeys(m for r in hit for m in r.measures))
        sentences = [r.reason_zh for r in hit] + [MEASURE_REASON[m] for m in measures]
        if named:
            sentences.append("涉及设备：" + named)
        per_ent[row] = {
            "verdict": hit[0].verdict if hit else CAT.default_verdict,
            "rule_ids": LIST_SEP.join(r.id for r in hit), "reasons": REASON_SEP.join(sentences),
            "deadline": dl, "deadline_status": st, "units": named, "unit_count": len(mine),
        }
    return per_ent, per_unit


# ------------------------------------------------------------------ inputs and the test


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = tmp_path_factory.mktemp("units_reference")
    reg_path, equ_path = write_dataset(synthetic_dataset(400, seed=11), folder / "registry.csv")
    ingested = read_registry(reg_path)
    units, _rejected = join_units(read_equipment(equ_path).units, ingested.accepted)
    if ingested.units is not None and len(ingested.units):
        units = pd.concat([ingested.units, units], ignore_index=True)
    located, _ = geocode(ingested.accepted, provider="offline")
    inside, _ = _outside_province(classify(located))
    units = units[units["enterprise_row"].isin(inside["row"])].reset_index(drop=True)
    assert len(units) > 2 * len(inside) and units["unit_id"].ne("").all()
    return inside, units


@pytest.mark.parametrize("as_of", [date(2019, 6, 30), date(2026, 12, 1)])
def test_units_and_enterprises_match_the_reference(inputs, as_of: date) -> None:
    ent, units = inputs
    res = evaluate_rules(ent, units, as_of=as_of)
    want_ent, want_unit = reference(ent, derive_unit_fields(units, as_of=as_of), as_of)

    assert len(res.units) == len(want_unit)
    named_units = 0
    for k, want in want_unit.items():
        got = res.units.iloc[k]
        assert {c: str(got[c]) for c in want} == want, (k, got["unit_id"])
        named_units += bool(want["rule_ids"])
    assert named_units >= 60  # every unit rule's witness, and more

    got_e = res.enterprises.set_index("row")
    for row, want in want_ent.items():
        got = got_e.loc[row]
        assert {k: got[k] for k in want} == want, row
    assert sum(bool(w["units"]) for w in want_ent.values()) >= 60
