"""Witnesses: for a catalog rule, input values under which its conditions hold.

A witness is written in the inputs' own terms (registry attributes, equipment measures,
locations), never in the engine's derived fields: ``age_years > 15`` becomes a 投产年份,
``energy_over_limit`` an indicator and a measured value above its sourced limit, ``unit_text
contains 平拉`` a 工艺名称. :func:`write_files` renders a witness as a registry and an
equipment inventory with Chinese headers, units in the headers, and real writers (``csv``,
openpyxl), so the path from a file to a verdict is exercised for every rule.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import openpyxl

from layers.catalog import (
    AS_OF as AS_OF_TOKEN,
)
from layers.catalog import (
    AllOf,
    AnyOf,
    Condition,
    Predicate,
    Rule,
    energy_indicators,
    field_vocabulary,
    industries,
    read_data_toml,
)

AS_OF = date(2019, 6, 30)
LOCATION_FIELDS = ("city", "district", "basin_id", "region_id", "park_id")


def predicates(conds: list[Condition]) -> list[Predicate]:
    """Predicates a witness must satisfy (first branch of every ``any``)."""
    out: list[Predicate] = []
    for c in conds:
        if isinstance(c, Predicate):
            out.append(c)
        elif isinstance(c, AnyOf):
            out += predicates([c.any[0]])
        elif isinstance(c, AllOf):
            out += predicates(c.all)
    return out


def _number(preds: list[Predicate]) -> float:
    lo, hi = None, None
    for p in preds:
        v = float(p.value)  # type: ignore[arg-type]
        if p.op == "eq":
            return v
        if p.op in ("gt", "ge"):
            lo = v if lo is None else max(lo, v)
        if p.op in ("lt", "le"):
            hi = v if hi is None else min(hi, v)
    if lo is not None and hi is not None:
        return (lo + hi) / 2
    if lo is not None:
        return lo + 1
    assert hi is not None
    return hi - 1 if hi > 1 else hi / 2


def _other_value(name: str, bad: list[Any]) -> Any:
    spec = field_vocabulary()[name]
    if spec.kind == "bool":
        return not bad[0]
    for v in spec.values:
        if v not in bad:
            return v
    return "其他"


@dataclass
class Witness:
    """Canonical input values of one enterprise and (for unit rules) one unit."""

    industry_id: str
    enterprise: dict[str, Any] = field(default_factory=dict)
    unit: dict[str, Any] | None = None
    location: dict[str, Any] = field(default_factory=dict)


def _indicator(kind: str, industry: str) -> Any:
    inds = energy_indicators()
    if kind == "sourced":
        own = [i for i in inds if i.limit is not None and i.industry == industry]
        return (own or [i for i in inds if i.limit is not None])[0]
    own = [i for i in inds if i.limit is None and i.industry == industry]
    return (own or [i for i in inds if i.limit is None])[0]


def witness_industry(rule: Rule) -> str:
    """The industry a witness uses: one with a sourced energy limit when the rule needs it."""
    ids = [i.id for i in industries()] if "*" in rule.industries else list(rule.industries)
    needs_limit = any(p.field in ("energy_over_limit", "energy_recheck_over_limit")
                      for p in predicates(rule.when))
    if needs_limit:
        with_limit = {i.industry for i in energy_indicators() if i.limit is not None}
        ids = [i for i in ids if i in with_limit] or ids
    return ids[0]


def witness(rule: Rule) -> Witness:
    """Input values under which ``rule`` matches (its ``unless`` left blank)."""
    ind = witness_industry(rule)
    w = Witness(industry_id=ind, unit={} if rule.scope == "unit" else None)
    by_field: dict[str, list[Predicate]] = {}
    for p in predicates(rule.when):
        by_field.setdefault(p.field, []).append(p)
    vocab = field_vocabulary()
    for name, preds in by_field.items():
        _apply(w, name, preds, vocab, ind)
    if w.unit is not None and "unit_type" not in w.unit:
        w.unit["unit_type"] = "other"
    return w


def _apply(w: Witness, name: str, preds: list[Predicate], vocab: Any, industry: str) -> None:
    unit = w.unit if w.unit is not None else {}
    ent = w.enterprise
    if name == "industry_id":
        return
    if name in LOCATION_FIELDS:
        p = preds[0]
        w.location[name] = "" if p.op == "is_empty" else (
            p.value[0] if isinstance(p.value, list) else p.value)
        return
    if name == "unit_text":
        unit["process"] = (unit.get("process", "") + preds[0].value[0])  # type: ignore[index]
        return
    if name == "age_years":
        unit["commission_year"] = AS_OF.year - int(round(_number(preds) + 0.5))
        return
    if name in ("energy_over_limit", "energy_recheck_over_limit", "energy_limit_needed",
                "energy_deadline", "energy_indicator_id"):
        _energy(unit, name, preds, industry)
        return
    spec = vocab[name]
    target = unit if spec.scope == "unit" else ent
    p = preds[0]
    if p.op == "contains":
        target[name] = p.value[0]  # type: ignore[index]
    elif p.op in ("eq", "in"):
        target[name] = p.value[0] if isinstance(p.value, list) else p.value
    elif p.op in ("ne", "not_in"):
        bad = p.value if isinstance(p.value, list) else [p.value]
        target[name] = _other_value(name, bad)
    elif p.op == "is_empty":
        target[name] = ""
    elif p.op == "not_empty":
        target[name] = "x"
    elif spec.kind == "date":
        target[name] = AS_OF - timedelta(days=400) if p.op in ("lt", "le") else AS_OF
    else:
        target[name] = _number(preds)


def _energy(unit: dict[str, Any], name: str, preds: list[Predicate], industry: str) -> None:
    p = preds[0]
    if name == "energy_indicator_id":
        ind = next(i for i in energy_indicators() if i.id == p.value)
        unit["energy_indicator"] = ind.name_zh
        return
    if name == "energy_limit_needed":
        ind = _indicator("needed", industry)
        unit["energy_indicator"] = ind.name_zh
        unit.setdefault("energy_value", 100.0)
        return
    if name == "energy_deadline":
        past = p.value == AS_OF_TOKEN and p.op in ("lt", "le")
        unit["inspection_date"] = AS_OF - timedelta(days=400 if past else 10)
        return
    ind = _indicator("sourced", industry)
    unit["energy_indicator"] = ind.name_zh
    over = bool(p.value)
    key = "energy_value" if name == "energy_over_limit" else "energy_recheck_value"
    unit[key] = ind.limit * (1.05 if over else 0.95)  # type: ignore[operator]
    if name == "energy_recheck_over_limit":
        unit.setdefault("energy_value", ind.limit * 1.05)  # type: ignore[operator]


# --------------------------------------------------------------------------- locations


@cache
def point_for(location: tuple[tuple[str, Any], ...]) -> tuple[float, float]:
    """A WGS84 point whose classification has the wanted attributes and no review band.

    Found by sampling the reference layers with a fixed seed and checking each candidate
    with :func:`geo.classify.classify_point`, so a layer change fails loudly here.
    """
    from geo.classify import classify_point
    from geo.synthetic import sample_points
    from layers.registry import load_group

    want = dict(location)
    if "basin_id" in want and want["basin_id"]:
        g = load_group("basin")
        poly = g.loc[g["id"] == want["basin_id"], "geometry"].union_all()
    elif "region_id" in want and want["region_id"]:
        g = load_group("region")
        poly = g.loc[g["id"] == want["region_id"], "geometry"].union_all()
    elif "city" in want:
        g = load_group("district")
        poly = g.loc[g["city_zh"] == want["city"], "geometry"].union_all()
    else:
        g = load_group("district")
        poly = g.loc[(g["city_zh"] == "韶关市") & (g["name_zh"] == "曲江区"), "geometry"].union_all()
        want = {"basin_id": "", "region_id": "", **want}
    rng = np.random.default_rng(2019)
    xs, ys = sample_points(poly, 400, rng)
    for x, y in zip(xs, ys, strict=True):
        attrs = classify_point(float(x), float(y))
        if attrs.get("needs_review") or not attrs.get("district"):
            continue
        if all(attrs.get(k, "") == v for k, v in want.items()):
            return round(float(x), 6), round(float(y), 6)
    raise AssertionError(f"no point found for {want}")


# --------------------------------------------------------------------------- files


def _uscc(k: int) -> str:
    from geo.uscc import uscc_check_char

    body = f"91440000MA{k:07d}"[:17]
    return body + uscc_check_char(body)


@cache
def _headers() -> dict[str, tuple[str, str]]:
    """Field -> (Chinese header, canonical unit written in it)."""
    reg = read_data_toml("registry.toml")
    eq = read_data_toml("equipment.toml")
    out: dict[str, tuple[str, str]] = {}
    for k, v in reg.get("attributes", {}).items():
        out[k] = (v["label_zh"], "")
    for k, v in eq["measures"].items():
        out[k] = (v["label_zh"], eq["dimensions"][v["dimension"]]["canonical"])
    for sec in ("numbers", "dates", "attributes"):
        for k, v in eq.get(sec, {}).items():
            out.setdefault(k, (v["label_zh"], ""))
    return out


def _cell(name: str, value: Any) -> str:
    """A canonical value as a registry writes it (enum id -> its Chinese word, bool -> 是/否)."""
    spec = field_vocabulary().get(name)
    if isinstance(value, bool) or (hasattr(value, "dtype") and value.dtype == bool):
        return "是" if value else "否"
    if isinstance(value, date):
        return value.isoformat()
    if spec is not None and spec.kind == "enum" and name != "unit_type":
        doc = read_data_toml("equipment.toml" if spec.scope == "unit" else "registry.toml")
        return str(doc["attributes"][name]["values"][value][0])
    if name == "liquor_ratio":
        return f"1:{value:g}"
    if isinstance(value, float):
        return f"{value:.6f}".rstrip("0").rstrip(".")
    return str(value)


@dataclass
class Case:
    """One enterprise of a test file, optionally with units."""

    key: str
    industry_id: str
    enterprise: dict[str, Any]
    units: list[dict[str, Any]]
    location: dict[str, Any]


def case_of(rule: Rule, key: str) -> Case:
    w = witness(rule)
    return Case(key, w.industry_id, w.enterprise, [w.unit] if w.unit is not None else [],
                w.location)


def write_files(cases: list[Case], folder: Path, fmt: str) -> tuple[Path, Path | None]:
    """Write the registry (and the equipment inventory) for ``cases``.

    ``fmt="csv"``: registry.csv + equipment.csv (UTF-8 BOM, ``csv`` module).
    ``fmt="xlsx"``: registry.xlsx with the inventory as its second sheet 设备清单 (openpyxl).
    Returns the registry path and the separate equipment path (None for XLSX).
    """
    from layers.catalog import unit_types

    names = {i.id: i.name_zh for i in industries()}
    heads = _headers()
    ent_fields = sorted({k for c in cases for k in c.enterprise})
    reg_head = ["统一社会信用代码", "企业名称", "行业", "经度", "纬度", "坐标系",
                *(heads[f][0] for f in ent_fields)]
    reg_rows = []
    unit_rows = []
    unit_fields = sorted({k for c in cases for u in c.units for k in u if k != "unit_type"}
                         - {"capacity"})
    cap_cols = ("capacity_t_per_year", "capacity_hides_per_year", "capacity_m2_per_year",
                "capacity_pieces_per_year")
    cap_units = {"capacity_t_per_year": "吨/年", "capacity_hides_per_year": "标张/年",
                 "capacity_m2_per_year": "平方米/年", "capacity_pieces_per_year": "件/年"}
    plain = [f for f in unit_fields if f not in cap_cols]

    def head(f: str) -> str:
        label, unit = heads[f]
        return f"{label}({unit})" if unit and unit not in ("by unit",) else label

    unit_head = ["统一社会信用代码", "企业名称", "设备编号", "设备类型",
                 *(head(f) for f in plain), "年产能", "单位"]
    for k, c in enumerate(cases):
        uscc = _uscc(k + 1)
        lon, lat = point_for(tuple(sorted(c.location.items())))
        reg_rows.append([uscc, f"测试{c.key}有限公司", names[c.industry_id], f"{lon}", f"{lat}",
                         "WGS84", *(_cell(f, c.enterprise.get(f, "")) if f in c.enterprise
                                    else "" for f in ent_fields)])
        for j, u in enumerate(c.units):
            cap = next((f for f in cap_cols if f in u), None)
            unit_rows.append([
                uscc, "", f"{c.key}-{j + 1}号", unit_types()[u["unit_type"]],
                *(_cell(f, u[f]) if f in u else "" for f in plain),
                _cell(cap, u[cap]) if cap else "", cap_units[cap] if cap else "",
            ])
    if fmt == "csv":
        reg = folder / "registry.csv"
        equ = folder / "equipment.csv"
        for path, head_row, rows in ((reg, reg_head, reg_rows), (equ, unit_head, unit_rows)):
            with path.open("w", encoding="utf-8-sig", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(head_row)
                writer.writerows(rows)
        return reg, equ
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "企业名录"
    ws.append(reg_head)
    for r in reg_rows:
        ws.append(r)
    ws2 = wb.create_sheet("设备清单")
    ws2.append(unit_head)
    for r in unit_rows:
        ws2.append(r)
    reg = folder / "registry.xlsx"
    wb.save(reg)
    return reg, None
