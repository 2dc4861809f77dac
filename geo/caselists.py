"""The plan's lists as of a date, its calendar (what is due, what is late), and their Excel.

Inputs are frames: case states on the date (:func:`geo.cases.states`), judged monitoring
samples (:func:`geo.monitoring.judge`) and calendar submissions. The lists and dates are
data (``layers/data/calendar.toml``); each list's ``select`` names one selection below.

* :func:`build_list` / :func:`build_lists` -- one list as one or more tables (sheets);
* :func:`calendar_report` -- each dated item with its state on the date (submitted, late,
  due soon, upcoming), the departments still owing it, and the sizes of the lists it
  carries; plus overdue cases per department;
* :func:`write_list_xlsx` -- a workbook with a 说明 sheet (title, publisher, date, legal
  basis, selection, count) and the list's sheets, Chinese headers, written atomically with
  the export helpers of :mod:`geo.export`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Final

import pandas as pd

from geo.cases import summary
from geo.errors import ExportError, InvalidQueryError
from geo.monitoring import exceedance_list, serious_list
from geo.schema import LIST_SEP
from layers.casework import ListDef, calendar_spec, case_spec

__all__ = [
    "ListTables",
    "build_list",
    "build_lists",
    "calendar_report",
    "overdue_by_department",
    "write_list_xlsx",
    "display_frame",
    "list_file_name",
    "write_all_lists",
]

logger = logging.getLogger(__name__)

_CASE_COLS: Final = (
    "case_id", "uscc", "name", "industry", "city", "district", "basin_id", "region_id",
    "verdict", "dimensions", "departments", "status_label", "status_date", "deadline",
    "extension_deadline", "due", "overdue", "days_overdue", "equipment_action", "capacity",
    "capacity_unit", "exited_on", "documents",
)
_EXIT_COLS: Final = (
    "case_id", "uscc", "name", "industry", "city", "district", "basin_id", "status_label",
    "exited_on", "equipment_action", "capacity", "capacity_unit", "departments", "documents",
)


@dataclass
class ListTables:
    """One list on one date: its definition and its sheets (title -> frame)."""

    definition: ListDef
    as_of: date
    sheets: dict[str, pd.DataFrame]

    @property
    def count(self) -> int:
        """Rows of the first sheet (the list proper)."""
        return len(next(iter(self.sheets.values()))) if self.sheets else 0


def _live(state: pd.DataFrame) -> pd.DataFrame:
    return state[state["status"].ne("dismissed")]


def _has(series: pd.Series, value: str, sep: str = LIST_SEP) -> pd.Series:
    return series.fillna("").astype(str).str.split(sep).map(lambda xs: value in xs)


def _topic(state: pd.DataFrame, topic: str) -> pd.Series:
    prefixes = tuple(case_spec().topics[topic]["rule_prefixes"])
    return state["rule_ids"].fillna("").astype(str).str.split(LIST_SEP).map(
        lambda ids: any(i.startswith(prefixes) for i in ids))


def _departments(cell: pd.Series) -> pd.Series:
    """Split '省工业和信息化厅、省发展改革委；省生态环境厅' into department names."""
    return cell.fillna("").astype(str).str.split(r"[、；;]", regex=True)


_Selector = Callable[[pd.DataFrame, pd.DataFrame, date, ListDef], dict[str, pd.DataFrame]]


def _all_cases(state: pd.DataFrame, _: pd.DataFrame, __: date,
               d: ListDef) -> dict[str, pd.DataFrame]:
    live = _live(state)
    sheets = {d.title_zh[:31]: live[list(_CASE_COLS)]}
    for dim_id, dim in case_spec().dimensions.items():
        part = live[_has(live["dimensions"], dim_id)]
        if len(part):
            sheets[f"{dim.label_zh}方面"] = part[list(_CASE_COLS)]
    return sheets


def _technology_exited(state: pd.DataFrame, _: pd.DataFrame, __: date,
                       d: ListDef) -> dict[str, pd.DataFrame]:
    sel = state[_has(state["dimensions"], "technology") & state["exited"]]
    return {d.title_zh[:31]: sel[list(_EXIT_COLS)]}


def _under_rectification(state: pd.DataFrame, _: pd.DataFrame, __: date,
                         d: ListDef) -> dict[str, pd.DataFrame]:
    sel = state[state["status"].isin(["notified", "rectifying"])]
    return {d.title_zh[:31]: sel[list(_CASE_COLS)]}


def _closed(state: pd.DataFrame, _: pd.DataFrame, __: date,
            d: ListDef) -> dict[str, pd.DataFrame]:
    sel = state[state["status"].eq("closed")]
    return {d.title_zh[:31]: sel[list(_EXIT_COLS)]}


def _coal_boiler_exited(state: pd.DataFrame, _: pd.DataFrame, __: date,
                        d: ListDef) -> dict[str, pd.DataFrame]:
    done = state["exited"] | state["status"].eq("accepted")
    sel = state[_topic(state, "coal_boiler") & done]
    return {d.title_zh[:31]: sel[list(_EXIT_COLS)]}


def _exceedance(_: pd.DataFrame, judged: pd.DataFrame, as_of: date,
                d: ListDef) -> dict[str, pd.DataFrame]:
    return {d.title_zh[:31]: exceedance_list(judged, as_of=as_of)}


def _serious(_: pd.DataFrame, judged: pd.DataFrame, as_of: date,
             d: ListDef) -> dict[str, pd.DataFrame]:
    return {d.title_zh[:31]: serious_list(judged, as_of=as_of)}


def _by_department(state: pd.DataFrame, _: pd.DataFrame, __: date,
                   d: ListDef) -> dict[str, pd.DataFrame]:
    live = _live(state)
    depts = _departments(live["departments"])
    names = sorted({x for xs in depts for x in xs if x})
    sheets = {d.title_zh[:31]: live[list(_CASE_COLS)]}
    for name in names:
        sheets[name[:31]] = live[depts.map(lambda xs, n=name: n in xs)][list(_CASE_COLS)]
    return sheets


def _year_end(state: pd.DataFrame, judged: pd.DataFrame, as_of: date,
              d: ListDef) -> dict[str, pd.DataFrame]:
    live = _live(state)
    closed = live[live["exited"]][list(_EXIT_COLS)]
    spec = calendar_spec()
    disclosure = pd.DataFrame([
        {"list": spec.lists[lid].title_zh, "publisher": spec.lists[lid].publisher,
         "count": build_list(lid, state, judged, as_of).count}
        for lid in ("technology_exit", *spec.periodic_lists)
    ])
    return {
        "依法关闭退出企业清单": closed,
        "按地级市汇总": summary(live, by="city"),
        "按流域汇总": summary(live, by="basin_id"),
        "按行业汇总": summary(live, by="industry"),
        "按责任方面汇总": summary(live, by="dimensions"),
        "信息公开情况": disclosure,
    }


_SELECTORS: Final[dict[str, _Selector]] = {
    "all_cases": _all_cases,
    "technology_exited": _technology_exited,
    "under_rectification": _under_rectification,
    "closed": _closed,
    "coal_boiler_exited": _coal_boiler_exited,
    "exceedance": _exceedance,
    "serious_exceedance": _serious,
    "by_department": _by_department,
    "year_end": _year_end,
}


def build_list(list_id: str, state: pd.DataFrame, judged: pd.DataFrame,
               as_of: date) -> ListTables:
    """One of calendar.toml's lists as of ``as_of``.

    Parameters
    ----------
    list_id
        A key of calendar.toml [lists].
    state
        Case states on ``as_of`` (:func:`geo.cases.states`).
    judged
        Judged monitoring samples (:func:`geo.monitoring.judge`); may be empty.

    Raises
    ------
    InvalidQueryError
        If the list id is unknown (naming the known ones).
    """
    spec = calendar_spec()
    if list_id not in spec.lists:
        raise InvalidQueryError(
            f"list: unknown list '{list_id}'; expected one of {', '.join(spec.lists)}."
        )
    d = spec.lists[list_id]
    sheets = _SELECTORS[d.select](state, judged, as_of, d)
    return ListTables(definition=d, as_of=as_of,
                      sheets={k: v.reset_index(drop=True) for k, v in sheets.items()})


def build_lists(state: pd.DataFrame, judged: pd.DataFrame, as_of: date) -> dict[str, ListTables]:
    """Every list of calendar.toml as of ``as_of``."""
    return {lid: build_list(lid, state, judged, as_of) for lid in calendar_spec().lists}


# --------------------------------------------------------------------------- calendar


def overdue_by_department(state: pd.DataFrame) -> pd.DataFrame:
    """Open cases past their deadline, counted per responsible department."""
    live = _live(state)
    late = live[live["overdue"].astype(bool)]
    depts = _departments(late["departments"])
    rows = late.assign(department=depts).explode("department")
    rows = rows[rows["department"].fillna("").ne("")]
    out = rows.groupby("department").agg(
        overdue=("case_id", "size"), max_days_overdue=("days_overdue", "max")).reset_index()
    return out.sort_values("overdue", ascending=False).reset_index(drop=True)


def calendar_report(as_of: date, *, submissions: pd.DataFrame, state: pd.DataFrame,
                    judged: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """What is due and what is late on ``as_of``.

    Returns
    -------
    dict
        ``items``: one row per calendar item (``id, due, title_zh, list, state, days,
        missing, lists``) where ``state`` is ``submitted`` (every department submitted by
        ``as_of``), ``late`` (due passed, ``missing`` departments), ``due_soon`` (within
        calendar.toml's ``due_soon_days``) or ``upcoming``; ``days`` = due − as_of;
        ``lists`` = the lists the item carries with their sizes on ``as_of``.
        ``overdue``: :func:`overdue_by_department`.
    """
    spec = calendar_spec()
    sub = submissions.copy()
    if len(sub):
        sub = sub[pd.to_datetime(sub["submitted_on"]).dt.date <= as_of]
    sizes: dict[str, int] = {}

    def size(lid: str) -> int:
        if lid not in sizes:
            sizes[lid] = build_list(lid, state, judged, as_of).count
        return sizes[lid]

    rows = []
    for it in spec.items:  # a loop over the plan's eight dated items
        done = set(sub.loc[sub["item_id"].eq(it.id), "department"]) if len(sub) else set()
        missing = [x for x in it.departments if x not in done]
        days = (it.due - as_of).days
        if not missing:
            state_ = "submitted"
        elif days < 0:
            state_ = "late"
        elif days <= spec.due_soon_days:
            state_ = "due_soon"
        else:
            state_ = "upcoming"
        carried = [it.list] + (spec.periodic_lists if it.id in spec.periodic_with else [])
        rows.append({
            "id": it.id, "due": it.due, "title_zh": it.title_zh, "list": it.list,
            "to": it.to, "citation": it.citation, "state": state_, "days": days,
            "missing": "、".join(missing),
            "lists": "；".join(f"{spec.lists[lid].title_zh}（{size(lid)}）" for lid in carried),
        })
    return {"items": pd.DataFrame(rows), "overdue": overdue_by_department(state)}


# --------------------------------------------------------------------------- Excel


def display_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Chinese view of a list table: labels for ids, 是/否, headers from calendar.toml."""
    from geo.export import _labels  # the labels.toml reader of the export module

    labels = _labels()
    words = labels["words"]
    cspec = case_spec()
    out = df.copy()
    if "verdict" in out:
        from layers.catalog import verdict_labels

        out["verdict"] = out["verdict"].map(lambda v: verdict_labels("zh").get(v, v))
    for col in ("basin_id", "region_id"):
        if col in out:
            out[col] = out[col].map(lambda v: labels["zones"].get(v, v))
    if "dimensions" in out:
        out["dimensions"] = out["dimensions"].fillna("").astype(str).map(
            lambda v: "、".join(cspec.dimensions[x].label_zh for x in v.split(LIST_SEP)
                               if x in cspec.dimensions))
    if "equipment_action" in out:
        out["equipment_action"] = out["equipment_action"].map(
            lambda v: cspec.equipment_actions.get(v, {}).get("label_zh", v or ""))
    if "documents" in out:
        out["documents"] = out["documents"].map(_docs_text)
    for col in ("overdue", "floor_only", "present"):
        if col in out:
            out[col] = out[col].map(lambda v: words["yes"] if v in (True, "1", 1)
                                    else words["no"])
    for col in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[col]):
            out[col] = out[col].dt.strftime("%Y-%m-%d %H:%M")
    out = out.astype(object).where(out.notna(), None)
    return out.rename(columns=calendar_spec().columns)


def _docs_text(v: object) -> str:
    import json

    if not v or (isinstance(v, float) and pd.isna(v)):
        return ""
    try:
        return "；".join(json.loads(str(v)))
    except ValueError:
        return str(v)


def write_list_xlsx(tables: ListTables, path: str | os.PathLike[str]) -> Path:
    """Write one list as Excel (Chinese headers), atomically.

    Sheets: 说明 (title, publisher, date, basis, count of each sheet), then the list's
    sheets with bold frozen headers and autofilters.
    """
    from openpyxl import Workbook

    from geo.export import _write_table, _xlsx_safe  # the export module's helpers
    from geo.files import atomic_target

    d = tables.definition
    about = pd.DataFrame({
        "项目": ["名单", "发布/报送单位", "截至日期", "依据", "依据原文", "生成方式"],
        "内容": [d.title_zh, d.publisher, tables.as_of.isoformat(), f"方案 {d.citation}",
               d.citation_text,
               "BasinWatch 按截至日期的案件状态和监测数据生成（layers/data/calendar.toml）"],
    })
    counts = pd.DataFrame({"工作表": list(tables.sheets),
                           "行数": [len(v) for v in tables.sheets.values()]})
    wb = Workbook()
    ws = wb.active
    ws.title = "说明"
    _write_table(ws, _xlsx_safe(about), autofilter=False)
    _write_table(ws, _xlsx_safe(counts), start_row=len(about) + 3, autofilter=False)
    for title, frame in tables.sheets.items():
        sheet = wb.create_sheet(title[:31])
        # registry text (names, addresses) never becomes a formula in a published list
        _write_table(sheet, _xlsx_safe(display_frame(frame)), autofilter=True)
        sheet.freeze_panes = "A2"
    try:
        with atomic_target(path) as tmp:
            wb.save(tmp)
    except OSError as exc:  # pragma: no cover - atomic_target already maps OSError
        raise ExportError(f"Cannot write {path}: {exc}") from exc
    return Path(path)


def list_file_name(list_id: str, as_of: date) -> str:
    """``<Chinese title>_<date>.xlsx`` (the file name offered for download)."""
    return f"{calendar_spec().lists[list_id].title_zh}_{as_of.isoformat()}.xlsx"


def write_all_lists(lists: Mapping[str, ListTables], out_dir: str | os.PathLike[str]) -> dict[
        str, Path]:
    """Write every list into ``out_dir``; list id -> path."""
    out = Path(out_dir)
    return {lid: write_list_xlsx(t, out / list_file_name(lid, t.as_of))
            for lid, t in lists.items()}
