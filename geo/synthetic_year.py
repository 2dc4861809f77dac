"""A seeded SYNTHETIC enforcement year for the bundled sample: equipment, monitoring, cases.

Everything here is invented, for demos, tests and the notebooks, and says so:

* :func:`synthetic_equipment` -- gives some steel, cement, tanning and ceramics enterprises
  an equipment size (the fields the Table 5 rules read) and re-applies the real rules
  engine, so technology-dimension cases exist;
* :func:`synthetic_monitoring` -- a monitoring file (Chinese headers, lab-report spellings
  such as ``ND`` and ``0.02L``, μg/L for metals, a few deliberately bad rows) for paper,
  dyeing and tanning enterprises, twice a month; a seeded share of them exceed the national
  limits, at least two per priority basin, some repeatedly or by more than three times;
* :func:`synthetic_case_changes` -- status changes through the year in the spreadsheet
  form officers import (案件编号, 日期, 状态, 整改期限, ...), following the workflow of
  ``layers/data/cases.toml``; some cases are left overdue.

Values are drawn column-wise with numpy; nothing here loops over enterprises.
"""

from __future__ import annotations

import logging
import os
import tempfile
from datetime import date
from pathlib import Path
from typing import Final

import numpy as np
import pandas as pd

from geo.rules import evaluate_rules
from geo.synthetic import SYNTHETIC_NOTE

__all__ = [
    "BASINS",
    "synthetic_equipment",
    "synthetic_monitoring",
    "write_monitoring",
    "synthetic_case_changes",
]

log = logging.getLogger(__name__)

BASINS: Final = ("lianjiang", "maozhou", "shima", "danshui")

#: Industry -> (pollutant, typical value, unit written in the file, national limit in that
#: unit used to scale exceedances: limits.toml's value, least strict sub-category; for the
#: tanning pollutants, whose limits are unsourced, a plausible scale only).
_PROFILE: Final[dict[str, tuple[tuple[str, float, str, float], ...]]] = {
    "dyeing": (("化学需氧量", 44.0, "mg/L", 80.0), ("氨氮", 5.5, "mg/L", 10.0),
               ("总氮", 8.0, "mg/L", 15.0), ("悬浮物", 27.0, "mg/L", 50.0),
               ("总锑", 50.0, "μg/L", 100.0)),
    "paper": (("化学需氧量", 55.0, "mg/L", 100.0), ("氨氮", 6.5, "mg/L", 12.0),
              ("总磷", 0.42, "mg/L", 0.8), ("悬浮物", 27.0, "mg/L", 50.0)),
    "tanning": (("化学需氧量", 60.0, "mg/L", 100.0), ("六价铬", 0.03, "mg/L", 0.1),
                ("总铬", 0.6, "mg/L", 1.5)),
}


def synthetic_equipment(enterprises: pd.DataFrame, *, seed: int = 2019,
                        share: float = 0.5) -> pd.DataFrame:
    """Equipment sizes for a ``share`` of steel, cement, tanning and ceramics enterprises,
    and the verdicts the rules engine gives with them.

    Adds ``blast_furnace_m3``, ``cement_mill_diameter_m``, ``tannery_hides_per_year``,
    ``ceramic_tile_m2_per_year`` (NaN where unknown), drawn on both sides of the Table 5
    thresholds, as one equipment unit each, then re-runs :func:`geo.rules.evaluate_rules`
    (as of 2019-04-01).
    """
    rng = np.random.default_rng(seed)
    out = enterprises.copy()
    n = len(out)
    ind = out["industry_id"].astype(str).to_numpy()
    pick = rng.random(n) < share
    draws = {
        "blast_furnace_m3": ("steel", rng.choice([300.0, 400.0, 450.0, 1080.0], n)),
        "cement_mill_diameter_m": ("cement", rng.choice([2.2, 2.6, 3.2, 3.8], n)),
        "tannery_hides_per_year": ("tanning", rng.choice([20_000.0, 40_000.0, 80_000.0], n)),
        "ceramic_tile_m2_per_year": ("ceramics", rng.choice([600_000.0, 900_000.0,
                                                             1_500_000.0, 3_000_000.0], n)),
    }
    for col, (industry, values) in draws.items():
        out[col] = np.where(pick & (ind == industry), values, np.nan)
    # the sizes are equipment units (Table 5 rules are per unit): one unit per known size
    kinds = {"blast_furnace_m3": ("blast_furnace", "volume_m3"),
             "cement_mill_diameter_m": ("cement_mill", "diameter_m"),
             "tannery_hides_per_year": ("tannery_line", "capacity_hides_per_year"),
             "ceramic_tile_m2_per_year": ("tile_line", "capacity_m2_per_year")}
    parts = []
    for col, (unit_type, measure) in kinds.items():
        has = out[col].notna().to_numpy()
        parts.append(pd.DataFrame({
            "enterprise_row": out["row"].to_numpy()[has], "source": "registry",
            "source_row": out["row"].to_numpy()[has], "unit_id": col,
            "unit_type": unit_type, measure: out[col].to_numpy()[has],
        }))
    units = pd.concat(parts, ignore_index=True)
    units["data_issues"] = ""
    from geo.schema import RULES_COLUMNS

    return evaluate_rules(out.drop(columns=[c for c in RULES_COLUMNS if c in out]), units,
                          as_of=date(2019, 4, 1)).enterprises


def synthetic_monitoring(enterprises: pd.DataFrame, *, seed: int = 2019, year: int = 2019,
                         per_area: int = 12, violator_share: float = 0.25,
                         bad_rows: int = 6) -> pd.DataFrame:
    """A year of monitoring rows (Chinese headers) for paper, dyeing and tanning enterprises.

    Parameters
    ----------
    enterprises
        The enforcement list (``uscc, name, industry_id, basin_id``).
    per_area
        Enterprises monitored per priority basin and outside them.
    violator_share
        Share of monitored enterprises whose discharge runs near or above the limits; at
        least two per basin. A third of the violators spike repeatedly; one per basin with
        a metal exceeds it more than three times over.

    Returns
    -------
    pandas.DataFrame
        ``统一社会信用代码, 企业名称, 排放口, 监测项目, 监测时间, 浓度, 单位, 流量, 数据说明``.
    """
    rng = np.random.default_rng(seed)
    ent = enterprises[enterprises["industry_id"].isin(list(_PROFILE))].copy()
    ent["area"] = ent["basin_id"].where(ent["basin_id"].isin(BASINS), "other")
    ent = ent.sample(frac=1.0, random_state=seed)
    chosen = ent.groupby("area", sort=True).head(per_area).reset_index(drop=True)
    k = len(chosen)
    rank = chosen.groupby("area").cumcount().to_numpy()
    violator = (rng.random(k) < violator_share) | (rank < 2)
    repeated = violator & ((rng.random(k) < 0.35) | (rank == 0))
    serious = violator & (rank == 0)
    days = pd.date_range(f"{year}-01-01", f"{year}-12-31", freq="SMS") + pd.Timedelta(hours=9)
    rows = []
    for ind, polls in _PROFILE.items():  # loops over 3 industries and their 3–5 pollutants
        sel = np.flatnonzero(chosen["industry_id"].to_numpy() == ind)
        if not len(sel):
            continue
        for p, typical, unit, lim in polls:
            m = len(sel) * len(days)
            e = np.repeat(sel, len(days))
            t = np.tile(days, len(sel))
            base = typical * rng.lognormal(0.0, 0.25, m)
            month = t.month.to_numpy() if hasattr(t, "month") else pd.DatetimeIndex(t).month
            hot = violator[e] & (rng.random(m) < 0.06)
            hot |= repeated[e] & np.isin(month, [3, 6, 7, 10]) & (rng.random(m) < 0.5)
            value = np.where(hot, lim * rng.uniform(1.05, 1.8, m), base)
            metal = p in ("总锑", "六价铬", "总铬")
            value = np.where(serious[e] & metal & np.isin(month, [5, 8]),
                             lim * rng.uniform(4.5, 6.0, m), value)
            text = np.char.mod("%.3g", value).astype(object)
            if metal:
                nd = rng.random(m) < 0.08
                text = np.where(nd, np.where(rng.random(m) < 0.5, "ND",
                                             "0.02L" if unit == "mg/L" else "5L"), text)
            rows.append(pd.DataFrame({
                "统一社会信用代码": chosen["uscc"].to_numpy()[e],
                "企业名称": chosen["name"].to_numpy()[e],
                "排放口": "DW001",
                "监测项目": p,
                "监测时间": pd.DatetimeIndex(t).strftime("%Y-%m-%d %H:%M"),
                "浓度": text,
                "单位": unit,
                "流量": np.round(rng.uniform(200, 3000, m), 0),
            }))
    df = pd.concat(rows, ignore_index=True)
    df["数据说明"] = SYNTHETIC_NOTE
    if bad_rows:
        bad = df.sample(bad_rows, random_state=seed).copy()
        kinds = ["监测项目", "监测时间", "浓度", "单位", "企业名称", "浓度"][:bad_rows]
        spoil = {"监测项目": "苯并芘", "监测时间": "2019-13-40", "浓度": "约五十",
                 "单位": "倍", "企业名称": "不存在的企业（合成）"}
        for i, col in enumerate(kinds):
            bad.iloc[i, bad.columns.get_loc(col)] = spoil[col]
            if col == "企业名称":
                bad.iloc[i, bad.columns.get_loc("统一社会信用代码")] = ""
        df = pd.concat([df, bad], ignore_index=True)
    order = np.argsort(df["监测时间"].to_numpy(), kind="stable")
    return df.iloc[order].reset_index(drop=True)


def write_monitoring(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write a monitoring frame as UTF-8 CSV with BOM (atomic)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".csv", dir=path.parent)
    os.close(fd)
    try:
        frame.to_csv(tmp, index=False, encoding="utf-8-sig")
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return path


def _capacity_units(rule_ids: pd.Series) -> np.ndarray:
    """Capacity unit of each case's first equipment rule (cases.toml [capacity])."""
    from geo.cases import rule_metadata

    units = rule_metadata()["capacity_unit"]
    units = units[units.ne("") & ~pd.Index(units.index).str.startswith("coal_boiler")]
    first = rule_ids.fillna("").astype(str).str.split(";").map(
        lambda ids: next((units[i] for i in ids if i in units.index), ""))
    return first.to_numpy(dtype=object)


def _days(rng: np.random.Generator, n: int, lo: int, hi: int) -> np.ndarray:
    return rng.integers(lo, hi + 1, n).astype("timedelta64[D]")


def synthetic_case_changes(state: pd.DataFrame, *, seed: int = 2019, year: int = 2019,
                           until: date | None = None) -> pd.DataFrame:
    """Status changes of a year, as the spreadsheet officers import.

    Parameters
    ----------
    state
        Case states at the start (``case_id, verdict, dimensions, rule_ids, opened_on``).
    until
        Changes after this date are left out (default: 31 January of the next year).

    Returns
    -------
    pandas.DataFrame
        ``案件编号, 日期, 状态, 整改期限, 延期至, 设备处置, 产能, 产能单位, 文书, 备注`` in date
        order. Shutdown cases are notified in April–May and mostly shut down and accepted;
        rectification cases get a deadline, a few an extension, are re-inspected and
        accepted or closed; about a quarter of the cases never move and some deadlines pass.
    """
    rng = np.random.default_rng(seed)
    end = np.datetime64(until or date(year + 1, 1, 31))
    s = state.reset_index(drop=True)
    n = len(s)
    cid = s["case_id"].to_numpy()
    start = np.datetime64(date(year, 4, 1))
    opened = np.maximum(pd.to_datetime(s["opened_on"]).to_numpy().astype("datetime64[D]"), start)
    moves = rng.random(n) < 0.78
    tech = s["dimensions"].astype(str).str.contains("technology").to_numpy()
    coal = s["rule_ids"].astype(str).str.contains("coal_boiler").to_numpy()
    shut = s["verdict"].eq("shutdown").to_numpy() | tech
    t_notify = opened + _days(rng, n, 4, 60)
    parts: list[pd.DataFrame] = []

    def add(mask: np.ndarray, when: np.ndarray, status: str, **extra: object) -> None:
        mask = mask & (when <= end)
        if mask.any():
            cols = {"案件编号": cid[mask], "日期": when[mask], "状态": status}
            for k, v in extra.items():
                cols[k] = v[mask] if isinstance(v, np.ndarray) else v
            parts.append(pd.DataFrame(cols))

    docno = np.char.add("粤环通〔2019〕", cid.astype(str))
    add(moves, t_notify, "notified", 文书=np.char.add(docno, "号 责令改正通知书"))
    # shutdown track: shut down (with equipment disposal when technology), then accepted
    t_shut = t_notify + _days(rng, n, 10, 150)
    done_shut = moves & shut & (rng.random(n) < 0.8)
    action = np.where(rng.random(n) < 0.6, "封存", "拆除")
    cap_unit = _capacity_units(s["rule_ids"])
    scale = np.select([cap_unit == "立方米", cap_unit == "米(磨机直径)", cap_unit == "千安"],
                      [rng.uniform(200, 400, n), rng.uniform(2.0, 2.9, n),
                       rng.uniform(80, 150, n)], rng.uniform(2e4, 8e5, n))
    cap = np.round(scale, 1)
    add(done_shut & tech, t_shut, "shut_down", 设备处置=action, 产能=cap,
        产能单位=cap_unit, 文书=np.char.add(docno, "号 关停验收材料"))
    add(done_shut & ~tech, t_shut, "shut_down", 文书=np.char.add(docno, "号 停产退出承诺书"))
    add(done_shut & (rng.random(n) < 0.7), t_shut + _days(rng, n, 15, 60), "accepted",
        文书=np.char.add(docno, "号 现场验收意见"))
    # rectification track (everything else that moves)
    rect = moves & ~shut
    coal_deadline = np.datetime64(date(year, 12, 31))
    t_rect = t_notify + _days(rng, n, 3, 20)
    deadline = np.where(coal, coal_deadline, t_rect + _days(rng, n, 60, 180))
    inspect_only = rect & ~coal & (rng.random(n) < 0.45)
    add(inspect_only, t_notify + _days(rng, n, 20, 90), "reinspected")
    add(inspect_only & (rng.random(n) < 0.9), t_notify + _days(rng, n, 100, 130), "accepted")
    rectifying = rect & ~inspect_only
    add(rectifying, t_rect, "rectifying",
        整改期限=pd.DatetimeIndex(deadline).strftime("%Y-%m-%d").to_numpy())
    extended = rectifying & (rng.random(n) < 0.12)
    ext = deadline + _days(rng, n, 30, 85)
    add(extended, deadline - _days(rng, n, 5, 20), "rectifying",
        延期至=pd.DatetimeIndex(ext).strftime("%Y-%m-%d").to_numpy(),
        文书=np.char.add(docno, "号 延期申请批复"))
    due = np.where(extended, ext, deadline)
    reinspect = rectifying & (rng.random(n) < 0.75)
    t_re = due - _days(rng, n, 0, 20)
    add(reinspect, t_re, "reinspected", 文书=np.char.add(docno, "号 复查记录"))
    passed = rng.random(n) < 0.85
    add(reinspect & passed, t_re + _days(rng, n, 3, 20), "accepted")
    add(reinspect & ~passed, t_re + _days(rng, n, 10, 30), "closed",
        文书=np.char.add(docno, "号 关闭决定书"))
    if not parts:
        return pd.DataFrame(columns=["案件编号", "日期", "状态"])
    out = pd.concat(parts, ignore_index=True)
    order = {"notified": 0, "rectifying": 1, "shut_down": 2, "reinspected": 3,
             "accepted": 4, "closed": 4}
    out["_o"] = out["状态"].map(order)
    out = out.sort_values(["日期", "案件编号", "_o"], kind="stable").drop(columns="_o")
    out["日期"] = pd.DatetimeIndex(out["日期"]).strftime("%Y-%m-%d")
    out["备注"] = SYNTHETIC_NOTE
    cols = ["案件编号", "日期", "状态", "整改期限", "延期至", "设备处置", "产能", "产能单位",
            "文书", "备注"]
    out = out.reindex(columns=cols).astype(object)
    return out.where(out.notna(), "").reset_index(drop=True)
