"""Enforcement cases: from a verdict to a closed case, as an append-only history.

A case is opened for every enterprise whose verdict is not ``no_action``. Everything known
about it is a *field* (its enterprise's name, place and verdict; its status, deadline,
extension, equipment disposal, documents, department, capacity) and every change of a field
is an *event* ``(case_id, field, before, after, effective_date, recorded_at, recorded_by,
source, note)``. Events are only ever appended; a case's state on a date is, per field, the
latest event effective on or before that date (the stores answer it with one query).

This module is pure (frames in, frames out); ``api.store.casestore`` keeps the rows.

* :func:`rule_metadata` -- the one place that joins rule ids to their dimension, department,
  deadline, topic and capacity field (from rules.toml where it says, else cases.toml).
* :func:`sync_events` -- a new registry load against the current cases: matched enterprises
  (credit code, then name + location) continue their case, changed fields (verdict ...) are
  recorded and reported, new verdicts open cases, absent enterprises are marked absent.
* :func:`plan_change` -- validate one status change against the workflow of cases.toml and
  the plan's deadlines, returning the events to append.
* :func:`states` -- pivot the latest events into one row per case with derived columns
  (effective deadline, overdue, exited).
* :func:`summary` -- counts per basin / city / industry / dimension.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, Final

import numpy as np
import pandas as pd

from geo.errors import GeoError
from geo.schema import LIST_SEP
from layers.casework import CaseSpec, case_spec
from layers.catalog import RuleCatalog
from layers.catalog import rules as default_rules

__all__ = [
    "CaseError",
    "CaseNotFoundError",
    "CASE_COLUMNS",
    "EVENT_COLUMNS",
    "SNAPSHOT_FIELDS",
    "WORKFLOW_FIELDS",
    "CASE_FIELDS",
    "STATE_COLUMNS",
    "CaseChange",
    "SyncResult",
    "rule_metadata",
    "case_attributes",
    "match_enterprises",
    "sync_events",
    "plan_change",
    "states",
    "summary",
    "events_frame",
    "apply_changes",
    "read_case_changes",
    "latest_events",
    "exit_dates",
]

logger = logging.getLogger(__name__)


class CaseError(GeoError, ValueError):
    """A case change is not allowed (wrong status step, missing deadline, bad date ...)."""

    http_status = 422
    default_msg = "The case change is not allowed."


class CaseNotFoundError(GeoError, KeyError):
    """No case with that id."""

    http_status = 404

    def __str__(self) -> str:
        return self.msg


#: The identity row of a case (written once, never changed).
CASE_COLUMNS: Final = ("case_id", "opened_on", "opened_at", "opened_by", "load_id")
#: One change of one field of one case.
EVENT_COLUMNS: Final = (
    "event_id", "case_id", "field", "before", "after", "effective_date", "recorded_at",
    "recorded_by", "source", "note",
)
#: Fields copied from the enforcement list at each load (what the enterprise is and where).
SNAPSHOT_FIELDS: Final = (
    "uscc", "name", "industry_id", "industry", "city", "district", "basin_id", "region_id",
    "lon", "lat", "verdict", "rule_ids", "dimensions", "departments", "present",
)
#: Fields officers change (API, spreadsheet import).
WORKFLOW_FIELDS: Final = (
    "status", "deadline", "extension_deadline", "equipment_action", "documents",
    "department", "capacity", "capacity_unit", "note",
)
CASE_FIELDS: Final = SNAPSHOT_FIELDS + WORKFLOW_FIELDS
_FLOAT: Final = ("lon", "lat", "capacity")
_DATE: Final = ("deadline", "extension_deadline")
#: Columns of :func:`states`.
STATE_COLUMNS: Final = (
    "case_id", "opened_on", *CASE_FIELDS, "status_date", "due", "overdue", "days_overdue",
    "exited", "exited_on", "status_label",
)


@dataclass
class CaseChange:
    """One change an officer records (API body or one spreadsheet row).

    ``on`` is the date the change took effect (the document's date), not when it is typed.
    """

    case_id: int
    on: date
    status: str | None = None
    deadline: date | None = None
    extension_deadline: date | None = None
    equipment_action: str | None = None
    documents: Sequence[str] = ()
    department: str | None = None
    capacity: float | None = None
    capacity_unit: str | None = None
    note: str = ""


@dataclass
class SyncResult:
    """What a registry load does to the cases (see :func:`sync_events`)."""

    new_cases: pd.DataFrame
    events: pd.DataFrame
    changes: pd.DataFrame
    counts: dict[str, int] = field(default_factory=dict)


# --------------------------------------------------------------------------- rule metadata


_META_CACHE: dict[tuple[int, int], tuple[RuleCatalog, CaseSpec, pd.DataFrame]] = {}


def _rule_metadata_cached(catalog: RuleCatalog, spec: CaseSpec) -> pd.DataFrame:
    hit = _META_CACHE.get((id(catalog), id(spec)))
    if hit is not None and hit[0] is catalog and hit[1] is spec:
        return hit[2]
    rows = []
    for rule in catalog.rules:
        dim = getattr(rule, "dimension", None) or next(
            (d.id for d in spec.dimensions.values()
             if any(rule.citation.startswith(c) for c in d.citations)), "")
        topic = next((t for t, body in spec.topics.items()
                      if any(rule.id.startswith(p) for p in body.get("rule_prefixes", []))), "")
        deadline = rule.deadline
        immediate = bool(getattr(rule, "immediate", False))
        if deadline is None and (immediate or (
                rule.verdict == "shutdown" and spec.shutdown_due_from_effective)):
            deadline = rule.effective
        cap = spec.capacity.get(rule.id, {})
        rows.append({
            "rule_id": rule.id, "verdict": rule.verdict, "dimension": dim,
            "department": spec.dimensions[dim].department if dim else "",
            "deadline": deadline, "effective": rule.effective, "topic": topic,
            "equipment": bool(dim and spec.dimensions[dim].equipment),
            "capacity_field": cap.get("field", ""), "capacity_unit": cap.get("unit", ""),
        })
    meta = pd.DataFrame(rows).set_index("rule_id")
    _META_CACHE[(id(catalog), id(spec))] = (catalog, spec, meta)
    return meta


def rule_metadata(catalog: RuleCatalog | None = None,
                  spec: CaseSpec | None = None) -> pd.DataFrame:
    """Per rule id: dimension, department, first deadline, topic, equipment, capacity field.

    The one place rules are joined to case metadata. ``dimension`` is the rule's own
    ``dimension`` attribute when the catalog has one, else the dimension whose citation
    prefixes (cases.toml) the rule's citation starts with; ``deadline`` is the rule's, or
    its effective date for shutdown rules without one (cases.toml [deadlines]).
    """
    return _rule_metadata_cached(catalog or default_rules(), spec or case_spec())


def _join_unique(values: Iterable[str], sep: str) -> str:
    return sep.join(dict.fromkeys(v for v in values if v))


def case_attributes(enterprises: pd.DataFrame, *,
                    catalog: RuleCatalog | None = None) -> pd.DataFrame:
    """Snapshot fields (and the first deadline, capacity) of each enterprise's case.

    Parameters
    ----------
    enterprises
        The enforcement list (``uscc, name, industry_id, industry, city, district,
        basin_id, region_id, lon, lat, verdict, rule_ids``; the registry's capacity columns
        when present).

    Returns
    -------
    pandas.DataFrame
        Same index; :data:`SNAPSHOT_FIELDS` as text plus ``deadline`` (ISO date or ''),
        ``capacity``/``capacity_unit`` (from the first equipment rule whose registry column
        is present and positive).
    """
    meta = rule_metadata(catalog)
    rule_lists = enterprises["rule_ids"].fillna("").astype(str)
    distinct = rule_lists.unique()  # one pass per distinct rule combination, not per row
    per_combo: dict[str, dict[str, str]] = {}
    for combo in distinct:
        ids = [r for r in combo.split(LIST_SEP) if r in meta.index]
        sub = meta.loc[ids] if ids else meta.iloc[0:0]
        deadlines = [d for d in sub["deadline"] if d is not None and not pd.isna(d)]
        per_combo[combo] = {
            "dimensions": _join_unique(sub["dimension"], LIST_SEP),
            "departments": _join_unique(sub["department"], "；"),
            "deadline": min(deadlines).isoformat() if deadlines else "",
            "capacity_field": next((f for f in sub["capacity_field"] if f), ""),
        }
    combo = pd.DataFrame.from_dict(per_combo, orient="index")
    picked = combo.reindex(rule_lists.to_numpy())
    picked.index = enterprises.index
    out = pd.DataFrame(index=enterprises.index)
    for col in SNAPSHOT_FIELDS:
        if col in ("dimensions", "departments"):
            out[col] = picked[col].fillna("").astype(str)
        elif col == "present":
            out[col] = "1"
        elif col in _FLOAT:
            out[col] = pd.to_numeric(enterprises[col], errors="coerce").map(_fmt_float)
        else:
            out[col] = enterprises[col].fillna("").astype(str) if col in enterprises else ""
    out["deadline"] = picked["deadline"].fillna("").astype(str)
    if "deadline" in enterprises:  # a per-row deadline from the rules engine wins
        row_deadline = enterprises["deadline"].fillna("").astype(str).str.slice(0, 10)
        out["deadline"] = row_deadline.where(row_deadline.ne(""), out["deadline"])
    cap_field = picked["capacity_field"].fillna("").astype(str)
    cap = pd.Series(np.nan, index=enterprises.index)
    unit = pd.Series("", index=enterprises.index, dtype=object)
    for fld in [f for f in cap_field.unique() if f and f in enterprises]:
        sel = cap_field.eq(fld)
        cap = cap.where(~sel, pd.to_numeric(enterprises[fld], errors="coerce"))
        unit_of = meta.loc[meta["capacity_field"].eq(fld), "capacity_unit"].iloc[0]
        unit = unit.where(~sel, unit_of)
    known = cap.gt(0)
    out["capacity"] = cap.where(known).map(_fmt_float)
    out["capacity_unit"] = unit.where(known, "")
    return out


def _fmt_float(x: object) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return ""
    return repr(float(x))  # type: ignore[arg-type]


# --------------------------------------------------------------------------- matching


def _norm_name(s: pd.Series) -> pd.Series:
    return (s.fillna("").astype(str).str.normalize("NFKC").str.strip().str.lower()
            .str.replace(r"[\s()（）]", "", regex=True))


def _haversine_m(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray,
                 lat2: np.ndarray) -> np.ndarray:
    r = 6_371_008.8
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dphi = p2 - p1
    dlmb = np.radians(lon2 - lon1)
    a = np.sin(dphi / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return 2 * r * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


def match_enterprises(current: pd.DataFrame, enterprises: pd.DataFrame, *,
                      max_distance_m: float | None = None) -> pd.Series:
    """Case id continued by each enterprise of a new load (NaN: none).

    Parameters
    ----------
    current
        Current case states (``case_id, uscc, name, lon, lat``).
    enterprises
        The new load's enforcement list.
    max_distance_m
        Name matches must lie this close to the case's last location (cases.toml).

    Returns
    -------
    pandas.Series
        Float case ids on ``enterprises.index``. A case is continued by at most one
        enterprise: by credit code first, then by normalised name within the distance
        (nearest wins).
    """
    tol = case_spec().max_distance_m if max_distance_m is None else max_distance_m
    out = pd.Series(np.nan, index=enterprises.index)
    if current.empty or enterprises.empty:
        return out
    cur = current[["case_id", "uscc", "name", "lon", "lat"]].copy()
    cur["uscc"] = cur["uscc"].fillna("").astype(str)
    code = enterprises["uscc"].fillna("").astype(str)
    by_code = cur[cur["uscc"].ne("")].drop_duplicates("uscc").set_index("uscc")["case_id"]
    out = code.where(code.ne(""), None).map(by_code).astype("float64")
    out = out.where(~out.duplicated() | out.isna())  # duplicate codes: first row only
    taken = set(out.dropna().astype(int))
    rest_c = cur[~cur["case_id"].isin(taken)].assign(_k=lambda d: _norm_name(d["name"]))
    todo = enterprises[out.isna()]
    if rest_c.empty or todo.empty:
        return out
    cand = pd.DataFrame({"_pos": todo.index, "_k": _norm_name(todo["name"]).to_numpy(),
                         "_lon": pd.to_numeric(todo["lon"], errors="coerce").to_numpy(),
                         "_lat": pd.to_numeric(todo["lat"], errors="coerce").to_numpy()})
    pairs = cand.merge(rest_c, on="_k")
    if pairs.empty:
        return out
    d = _haversine_m(pairs["_lon"].to_numpy(float), pairs["_lat"].to_numpy(float),
                     pd.to_numeric(pairs["lon"], errors="coerce").to_numpy(float),
                     pd.to_numeric(pairs["lat"], errors="coerce").to_numpy(float))
    pairs = pairs.assign(_d=d)[d <= tol].sort_values("_d")
    pairs = pairs.drop_duplicates("case_id").drop_duplicates("_pos")
    out.loc[pairs["_pos"].to_numpy()] = pairs["case_id"].to_numpy(dtype=float)
    return out


# --------------------------------------------------------------------------- events


def events_frame(rows: Iterable[Mapping[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Events with exactly :data:`EVENT_COLUMNS` minus ``event_id`` (the store numbers them)."""
    df = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows
    cols = [c for c in EVENT_COLUMNS if c != "event_id"]
    if df.empty:
        return pd.DataFrame(columns=cols)
    for c in ("before", "after", "recorded_by", "source", "note", "field"):
        df[c] = df[c].fillna("").astype(str) if c in df else ""
    return df[cols].reset_index(drop=True)


def _long(frame: pd.DataFrame, fields: Sequence[str]) -> pd.DataFrame:
    """Wide (case_id + fields) -> long (case_id, field, after)."""
    long = frame.melt(id_vars="case_id", value_vars=list(fields), var_name="field",
                      value_name="after")
    return long[long["after"].astype(str).ne("")]


def sync_events(
    current: pd.DataFrame,
    enterprises: pd.DataFrame,
    *,
    load_id: int,
    as_of: date,
    recorded_by: str,
    next_case_id: int,
    recorded_at: datetime | None = None,
    catalog: RuleCatalog | None = None,
) -> SyncResult:
    """Events a new registry load brings to the cases.

    Parameters
    ----------
    current
        Current case states (:func:`states` of the latest events, all cases).
    enterprises
        The load's enforcement list.
    load_id
        The load's id (events get ``source = "load:<id>"``).
    as_of
        Effective date of the changes (the date the load describes).
    recorded_by
        Who loaded.
    next_case_id
        First id for new cases.

    Returns
    -------
    SyncResult
        ``new_cases`` (:data:`CASE_COLUMNS`), ``events`` (every snapshot field of a new case
        plus its initial status and deadline; each changed field of a continued case;
        ``present`` = 0 for cases whose enterprise is not in the load), ``changes`` (one row
        per changed field of a continued case: ``case_id, uscc, name, field, before,
        after``) and ``counts`` (opened, continued, changed, verdict_changed, absent).
    """
    now = recorded_at or datetime.now(UTC)
    spec = case_spec()
    source = f"load:{load_id}"
    attrs = case_attributes(enterprises, catalog=catalog)
    matched = match_enterprises(current, enterprises)
    base = {"effective_date": as_of, "recorded_at": now, "recorded_by": recorded_by,
            "source": source, "note": ""}

    # continued cases: changed snapshot fields
    cont = attrs[matched.notna()].assign(case_id=matched[matched.notna()].astype(int))
    cur = current.set_index("case_id")
    ev_parts: list[pd.DataFrame] = []
    change_parts: list[pd.DataFrame] = []
    for fld in SNAPSHOT_FIELDS:  # a loop over 15 fields, each column-wise
        before = (cont["case_id"].map(cur[fld].fillna("").astype(str)) if len(cur)
                  else pd.Series("", index=cont.index, dtype=object))
        after = cont[fld].astype(str)
        differs = before.ne(after)
        if fld in ("lon", "lat"):
            diff_m = (pd.to_numeric(before, errors="coerce")
                      - pd.to_numeric(after, errors="coerce")).abs() * 111_000
            differs = differs & ~(diff_m < 1.0)  # re-geocoding noise below a metre
        if differs.any():
            part = pd.DataFrame({"case_id": cont["case_id"][differs], "field": fld,
                                 "before": before[differs], "after": after[differs]})
            ev_parts.append(part)
            change_parts.append(part.assign(uscc=cont["uscc"][differs],
                                            name=cont["name"][differs]))

    # new cases
    new_mask = matched.isna() & enterprises["verdict"].astype(str).ne("no_action")
    new = attrs[new_mask.to_numpy()].copy()
    new["case_id"] = np.arange(next_case_id, next_case_id + len(new))
    new["status"] = spec.initial_status
    new_events = _long(new, [*SNAPSHOT_FIELDS, "status", "deadline", "capacity",
                             "capacity_unit"]).assign(before="")
    new_cases = pd.DataFrame({"case_id": new["case_id"].to_numpy(), "opened_on": as_of,
                              "opened_at": now, "opened_by": recorded_by, "load_id": load_id},
                             columns=list(CASE_COLUMNS))

    # cases whose enterprise is absent from this load
    seen = set(matched.dropna().astype(int))
    absent = current[~current["case_id"].isin(seen) & current["present"].astype(str).eq("1")]
    absent_ev = pd.DataFrame({"case_id": absent["case_id"], "field": "present",
                              "before": "1", "after": "0"})

    events = pd.concat([*ev_parts, new_events, absent_ev], ignore_index=True)
    events = events_frame(events.assign(**base)) if len(events) else events_frame([])
    changes = (pd.concat(change_parts, ignore_index=True) if change_parts
               else pd.DataFrame(columns=["case_id", "field", "before", "after", "uscc", "name"]))
    changes = changes[["case_id", "uscc", "name", "field", "before", "after"]]
    verdict_changed = int(changes["field"].eq("verdict").sum())
    counts = {"opened": len(new_cases), "continued": int(matched.notna().sum()),
              "changed": int(changes["case_id"].nunique()),
              "verdict_changed": verdict_changed, "absent": len(absent)}
    logger.info("load %d: %s", load_id, counts)
    return SyncResult(new_cases=new_cases, events=events, changes=changes, counts=counts)


# --------------------------------------------------------------------------- changes


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    last = (date(year + (month == 12), month % 12 + 1, 1) - date(year, month, 1)).days
    return date(year, month, min(d.day, last))


def _as_date(text: object) -> date | None:
    if text is None or text == "" or (not isinstance(text, str) and pd.isna(text)):
        return None
    if isinstance(text, date):
        return text
    return date.fromisoformat(str(text)[:10])


def _limits(dimensions: str, spec: CaseSpec) -> tuple[int | None, int | None, str]:
    """Strictest rectification / extension months over the case's dimensions."""
    dims = [spec.dimensions[d] for d in dimensions.split(LIST_SEP) if d in spec.dimensions]
    rect = [d.rectify_months for d in dims if d.rectify_months]
    ext = [d.extension_months for d in dims if d.extension_months]
    cite = next((d.deadline_citation for d in dims if d.deadline_citation), "")
    return (min(rect) if rect else None), (min(ext) if ext else None), cite


def plan_change(case: Mapping[str, Any], change: CaseChange, *, today: date | None = None,
                spec: CaseSpec | None = None) -> list[dict[str, str]]:
    """Validate one change against the case's current state; the field changes to record.

    Parameters
    ----------
    case
        The case's current state (a row of :func:`states` at the latest date).
    change
        What the officer records.
    today
        Changes may not take effect after this date (default: today).

    Returns
    -------
    list of dict
        ``{field, before, after}`` for every field that changes.

    Raises
    ------
    CaseError
        Naming the field and what was expected: unknown status or step not allowed from the
        current status (cases.toml ``next``); a workflow change (status, deadline,
        extension, equipment) dated before the last status change, or any change after today; rectification without a deadline, or beyond the plan's months
        (二(一)2); a second or too long extension; shutting down equipment without 拆除/封存
        (二(五)1); closing before the deadline has passed without re-inspection.
    """
    spec = spec or case_spec()
    today = today or date.today()
    on = change.on
    cid = change.case_id
    current = str(case.get("status") or spec.initial_status)
    status_date = _as_date(case.get("status_date")) or _as_date(case.get("opened_on"))
    opened = _as_date(case.get("opened_on"))
    if on > today:
        raise CaseError(f"case {cid}: date {on} is in the future (today is {today}).")
    if opened and on < opened:
        raise CaseError(f"case {cid}: date {on} is before the case was opened on {opened}.")
    workflow = (change.status is not None or change.deadline is not None
                or change.extension_deadline is not None or bool(change.equipment_action))
    if workflow and status_date and on < status_date:
        raise CaseError(
            f"case {cid}: date {on} is before the case's last status change on {status_date}; "
            "history is appended in date order, record a correction as a new change."
        )
    deadline = _as_date(case.get("deadline"))
    extension = _as_date(case.get("extension_deadline"))
    out: list[dict[str, str]] = []

    def put(fld: str, after: str) -> None:
        value = case.get(fld)
        if value is None or (not isinstance(value, (list, str)) and pd.isna(value)):
            before = ""
        elif isinstance(value, date):
            before = value.isoformat()
        else:
            before = str(value)
        if before != after:
            out.append({"field": fld, "before": before, "after": after})

    new_status = change.status or current
    if change.status is not None:
        if change.status not in spec.statuses:
            raise CaseError(
                f"case {cid}: status '{change.status}' is unknown; expected one of "
                f"{', '.join(f'{s.id} ({s.label_zh})' for s in spec.statuses.values())}."
            )
        allowed = spec.status(current).next
        if change.status not in allowed:
            raise CaseError(
                f"case {cid}: status cannot go from '{current}' ({spec.status(current).label_zh}) "
                f"to '{change.status}'; allowed next: "
                f"{', '.join(allowed) or '(none, the case is finished)'}."
            )
    rect_months, ext_months, cite = _limits(str(case.get("dimensions") or ""), spec)
    is_extension = new_status == "rectifying" and current == "rectifying"
    if new_status == "rectifying" and not is_extension:
        dl = change.deadline or deadline
        if dl is None:
            raise CaseError(f"case {cid}: deadline (整改期限) is required to start rectifying.")
        if dl <= on:
            raise CaseError(f"case {cid}: deadline {dl} must be after the date {on}.")
        if rect_months and dl > _add_months(on, rect_months):
            raise CaseError(
                f"case {cid}: deadline {dl} is more than {rect_months} months after {on} "
                f"〔{cite}〕."
            )
    if is_extension and change.status is not None:
        if change.extension_deadline is None:
            raise CaseError(
                f"case {cid}: extension_deadline (延期至) is required to extend a rectification."
            )
    if change.extension_deadline is not None:
        if new_status != "rectifying":
            raise CaseError(f"case {cid}: extension_deadline only applies while rectifying.")
        if deadline is None or change.extension_deadline <= deadline:
            raise CaseError(
                f"case {cid}: extension_deadline {change.extension_deadline} must be after the "
                f"deadline {deadline}."
            )
        if ext_months and extension is not None:
            raise CaseError(f"case {cid}: only one extension is allowed 〔{cite}〕.")
        if ext_months and change.extension_deadline > _add_months(deadline, ext_months):
            raise CaseError(
                f"case {cid}: extension_deadline {change.extension_deadline} is more than "
                f"{ext_months} months after the deadline {deadline} 〔{cite}〕."
            )
    due = extension or deadline
    if new_status == "closed" and current == "rectifying" and (due is None or on <= due):
        raise CaseError(
            f"case {cid}: closing while rectifying needs the deadline {due} to have passed "
            "(逾期未整改); otherwise re-inspect first."
        )
    action = change.equipment_action or str(case.get("equipment_action") or "")
    if action and action not in spec.equipment_actions:
        raise CaseError(
            f"case {cid}: equipment_action '{action}' is unknown; expected "
            + ", ".join(k + " (" + v["label_zh"] + ")"
                        for k, v in spec.equipment_actions.items()) + "."
        )
    equipment = any(spec.dimensions[d].equipment for d in
                    str(case.get("dimensions") or "").split(LIST_SEP) if d in spec.dimensions)
    if new_status == "shut_down" and equipment and not action:
        raise CaseError(
            f"case {cid}: shutting down obsolete equipment needs equipment_action "
            "dismantled (拆除) or sealed (封存) 〔二(五)1〕."
        )
    if change.status is not None:
        out.append({"field": "status", "before": current, "after": change.status})
    if change.deadline is not None:
        put("deadline", change.deadline.isoformat())
    if change.extension_deadline is not None:
        put("extension_deadline", change.extension_deadline.isoformat())
    if change.equipment_action:
        put("equipment_action", change.equipment_action)
    if change.department:
        put("department", change.department)
    if change.capacity is not None:
        if not change.capacity > 0:
            raise CaseError(f"case {cid}: capacity must be positive, got {change.capacity}.")
        put("capacity", _fmt_float(change.capacity))
    unit = change.capacity_unit
    if change.capacity is not None and not unit and not case.get("capacity_unit"):
        meta = rule_metadata()["capacity_unit"]
        ids = str(case.get("rule_ids") or "").split(LIST_SEP)
        unit = next((meta[i] for i in ids if i in meta.index and meta[i]), None)
    if unit:
        put("capacity_unit", unit)
    if change.documents:
        docs = _documents(case.get("documents"))
        added = [d.strip() for d in change.documents if d.strip() and d.strip() not in docs]
        if added:
            put("documents", json.dumps(docs + added, ensure_ascii=False))
    if change.note:
        put("note", change.note)
    if not out:
        raise CaseError(f"case {cid}: the change changes nothing.")
    return out


def _documents(value: object) -> list[str]:
    if value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(v) for v in json.loads(str(value))]


# --------------------------------------------------------------------------- states


def states(latest: pd.DataFrame, cases: pd.DataFrame, *, as_of: date | None = None,
           exit_dates: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per case from its latest events (the result of a store's state query).

    Parameters
    ----------
    latest
        ``case_id, field, after, effective_date``: per case and field the latest event on or
        before ``as_of``.
    cases
        Case identity rows (:data:`CASE_COLUMNS`); only cases opened by ``as_of`` are kept.
    as_of
        The date (default today): decides ``overdue``.
    exit_dates
        ``case_id, exited_on``: the first exit status (cases.toml ``exit``) on or before
        ``as_of``.

    Returns
    -------
    pandas.DataFrame
        :data:`STATE_COLUMNS`: text fields ('' when never set), floats for ``lon, lat,
        capacity``, dates for ``deadline, extension_deadline, status_date, due, exited_on``;
        ``due`` = extension or deadline; ``overdue`` = open status (cases.toml) and due before
        ``as_of``; ``exited`` = an exit status was reached by ``as_of``.
    """
    spec = case_spec()
    when = as_of or date.today()
    ids = cases[pd.to_datetime(cases["opened_on"]).dt.date <= when][["case_id", "opened_on"]]
    wide = latest.pivot(index="case_id", columns="field", values="after") if len(latest) else \
        pd.DataFrame(index=pd.Index([], name="case_id"))
    out = ids.set_index("case_id").join(wide, how="left")
    for c in CASE_FIELDS:
        if c not in out:
            out[c] = ""
        out[c] = out[c].fillna("")
    sd = latest[latest["field"].eq("status")].set_index("case_id")["effective_date"] if len(
        latest) else pd.Series(dtype=object)
    out["status_date"] = pd.to_datetime(sd.reindex(out.index)).dt.date
    for c in _FLOAT:
        out[c] = pd.to_numeric(out[c], errors="coerce")
    ts = {c: pd.to_datetime(out[c].where(out[c].ne(""), None), errors="coerce")
          for c in _DATE}
    for c in _DATE:
        out[c] = ts[c].dt.date
    out["opened_on"] = pd.to_datetime(out["opened_on"]).dt.date
    ext = ts["extension_deadline"]
    due_ts = ext.where(ext.notna(), ts["deadline"])
    out["due"] = due_ts.dt.date
    open_ids = [s.id for s in spec.statuses.values() if s.open]
    is_open = out["status"].isin(open_ids)
    out["overdue"] = is_open & due_ts.notna() & (due_ts < pd.Timestamp(when))
    out["days_overdue"] = ((pd.Timestamp(when) - due_ts).dt.days.where(out["overdue"])
                           .astype("Int64"))
    ex = exit_dates.set_index("case_id")["exited_on"] if exit_dates is not None and len(
        exit_dates) else pd.Series(dtype=object)
    out["exited_on"] = pd.to_datetime(ex.reindex(out.index)).dt.date
    out["exited"] = out["exited_on"].notna()
    out["status_label"] = out["status"].map({s.id: s.label_zh for s in spec.statuses.values()})
    out = out.reset_index()
    return out[list(STATE_COLUMNS)].sort_values("case_id").reset_index(drop=True)


def summary(state: pd.DataFrame, *, by: str = "basin_id") -> pd.DataFrame:
    """Counts per group: cases, each status, overdue, exited, capacity exited.

    ``by`` is a state column (``basin_id, city, district, industry, industry_id,
    dimensions, departments``); multi-valued cells (dimensions, departments) count once per
    value. Capacity exited is summed per unit (``capacity_exited`` text ``"value unit"``).
    """
    if by not in state.columns:
        raise CaseError(f"by: unknown column '{by}'; expected one of {', '.join(STATE_COLUMNS)}.")
    spec = case_spec()
    df = state.copy()
    if by in ("dimensions", "departments"):
        sep = LIST_SEP if by == "dimensions" else "；"
        df[by] = df[by].astype(str).str.split(sep)
        df = df.explode(by)
    df[by] = df[by].fillna("").astype(str)
    g = df.groupby(by, sort=True)
    out = pd.DataFrame({"cases": g.size()})
    for s in spec.statuses:
        out[s] = g["status"].apply(lambda col, s=s: int(col.eq(s).sum()))
    out["overdue"] = g["overdue"].sum().astype(int)
    out["exited"] = g["exited"].sum().astype(int)
    cap = df[df["exited"] & df["capacity"].notna()]
    if len(cap):
        per = cap.groupby([by, "capacity_unit"])["capacity"].sum().reset_index()
        per["t"] = per["capacity"].map(lambda v: f"{v:.0f}" if v >= 1000 else f"{v:g}") + \
            " " + per["capacity_unit"]
        out["capacity_exited"] = per.groupby(by)["t"].agg("；".join)
    else:
        out["capacity_exited"] = ""
    out["capacity_exited"] = out["capacity_exited"].fillna("")
    return out.reset_index()


# --------------------------------------------------------------------------- batches


def apply_changes(
    current: pd.DataFrame,
    changes: Sequence[CaseChange],
    *,
    recorded_by: str,
    source: str,
    recorded_at: datetime | None = None,
    today: date | None = None,
    rows: Sequence[int] | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate changes in order, each against the state the earlier ones left.

    Parameters
    ----------
    current
        Current states (:func:`states`) of at least the cases the changes name.
    changes
        The changes, in the order they are recorded.
    rows
        Source row numbers (spreadsheet rows) for the rejection report; default 1..n.

    Returns
    -------
    tuple
        ``(events, rejected)``: events to append (:func:`events_frame`), and one row per
        refused change (``row, case_id, reason, message``). A refused change does not stop
        the others.
    """
    now = recorded_at or datetime.now(UTC)
    by_id = {int(r["case_id"]): dict(r) for r in current.to_dict("records")}
    rows = list(rows) if rows is not None else list(range(1, len(changes) + 1))
    events: list[dict[str, Any]] = []
    rejected: list[dict[str, Any]] = []
    for row, ch in zip(rows, changes, strict=True):  # sequential by nature: each sees the last
        case = by_id.get(int(ch.case_id))
        if case is None:
            rejected.append({"row": row, "case_id": ch.case_id, "reason": "case_not_found",
                             "message": f"case {ch.case_id} does not exist."})
            continue
        try:
            planned = plan_change(case, ch, today=today)
        except CaseError as exc:
            rejected.append({"row": row, "case_id": ch.case_id, "reason": "change_refused",
                             "message": exc.msg})
            continue
        for p in planned:
            events.append({**p, "case_id": int(ch.case_id), "effective_date": ch.on,
                           "recorded_at": now, "recorded_by": recorded_by, "source": source,
                           "note": ch.note})
            case[p["field"]] = p["after"]
            if p["field"] == "status":
                case["status_date"] = ch.on
    rej = pd.DataFrame(rejected, columns=["row", "case_id", "reason", "message"])
    return events_frame(events), rej


def read_case_changes(
    source: Any, *, filename: str | None = None, current: pd.DataFrame
) -> tuple[list[CaseChange], list[int], pd.DataFrame]:
    """Parse a status-change spreadsheet (headers of cases.toml [import.columns]).

    Parameters
    ----------
    source
        Path, buffer or bytes of a CSV/XLSX (the registry reader of :mod:`geo.ingest`).
    current
        Current case states, to find cases by credit code or name.

    Returns
    -------
    tuple
        ``(changes, rows, rejected)``: the parsed changes with their spreadsheet rows, and
        the rows that cannot be parsed (``row, case_id, reason, message``) naming the field:
        unknown case, unknown status or equipment label, bad date or number.
    """
    from geo.errors import MissingColumnError
    from geo.tables import header_lookup, map_headers, parse_numbers, read_table

    spec = case_spec()
    cols = spec.import_columns
    raw, _ = read_table(source, filename=filename, kind="case spreadsheet")
    mapping = map_headers(raw, header_lookup(cols))
    present = set(mapping.values())
    if not {"case_id", "uscc", "name"} & present:
        raise MissingColumnError("案件编号 / 统一社会信用代码 / 企业名称",
                                 tuple(cols["case_id"]["aliases"]), list(map(str, raw.columns)))
    if "on" not in present:
        raise MissingColumnError("日期 (on)", tuple(cols["on"]["aliases"]),
                                 list(map(str, raw.columns)))
    t = raw[list(mapping)].rename(columns=mapping)
    t.index = pd.RangeIndex(2, len(t) + 2)
    t = t[~t.apply(lambda c: c.str.strip().eq("")).all(axis=1)]

    def col(k: str) -> pd.Series:
        return (t[k].str.normalize("NFKC").str.strip() if k in t
                else pd.Series("", index=t.index, dtype=object))

    # case id: explicit, else by credit code, else by unique name
    cid, bad_id = parse_numbers(col("case_id"))
    code_map = current[current["uscc"].astype(str).ne("")].drop_duplicates("uscc").set_index(
        "uscc")["case_id"]
    names = _norm_name(current["name"])
    uniq = current.assign(_k=names)[names.map(names.value_counts()).eq(1)].set_index("_k")[
        "case_id"]
    cid = cid.where(cid.notna(), col("uscc").map(code_map))
    cid = cid.where(cid.notna(), _norm_name(col("name")).map(uniq))
    status_of = {k: k for k in spec.statuses} | {
        _norm_name(pd.Series([s.label_zh])).iloc[0]: k for k, s in spec.statuses.items()}
    status_raw = col("status")
    status = _norm_name(status_raw).map(lambda v: status_of.get(v, status_of.get(v.lower())))
    action_of = {k: k for k in spec.equipment_actions} | {
        v["label_zh"]: k for k, v in spec.equipment_actions.items()}
    action = col("equipment_action").map(lambda v: action_of.get(v) if v else "")
    dates = {k: pd.to_datetime(col(k).replace("", None), errors="coerce", format="mixed")
             for k in ("on", "deadline", "extension_deadline")}
    cap, bad_cap = parse_numbers(col("capacity"))
    labels = {k: v["label_zh"] for k, v in cols.items()}
    checks = [
        ("case_unknown", cid.isna() | bad_id, "case_id",
         "无法确定案件：请填写存在的案件编号、统一社会信用代码或唯一的企业名称"),
        ("date_invalid", dates["on"].isna(), "on", "日期应为 YYYY-MM-DD"),
        ("status_unknown", status_raw.ne("") & status.isna(), "status",
         "应为：" + "、".join(f"{s.label_zh}({k})" for k, s in spec.statuses.items())),
        ("date_invalid", col("deadline").ne("") & dates["deadline"].isna(), "deadline",
         "日期应为 YYYY-MM-DD"),
        ("date_invalid", col("extension_deadline").ne("") & dates["extension_deadline"].isna(),
         "extension_deadline", "日期应为 YYYY-MM-DD"),
        ("equipment_unknown", action.isna(), "equipment_action",
         "应为：" + "、".join(v["label_zh"] for v in spec.equipment_actions.values())),
        ("number_invalid", bad_cap, "capacity", "应为数值"),
    ]
    reason = pd.Series("", index=t.index, dtype=object)
    message = pd.Series("", index=t.index, dtype=object)
    for code, mask, fld, hint in reversed(checks):
        if not mask.any():
            continue
        text = f"第{{}}行：{labels[fld]}“" + col(fld) + f"”无效，{hint}"
        reason = reason.where(~mask, code)
        message = message.where(~mask, text)
    rejected = pd.DataFrame({
        "row": t.index[reason.ne("")], "case_id": cid[reason.ne("")],
        "reason": reason[reason.ne("")],
        "message": [m.format(r) for r, m in message[reason.ne("")].items()],
    }, columns=["row", "case_id", "reason", "message"])
    ok = t.index[reason.eq("")]
    docs = col("documents").str.split(r"[；;、\n]")

    def d(k: str, r: int) -> date | None:
        v = dates[k][r]
        return None if pd.isna(v) else v.date()

    dept, unit, note = col("department"), col("capacity_unit"), col("note")
    changes = [
        CaseChange(
            case_id=int(cid[r]), on=d("on", r) or date.min,
            status=status[r] if isinstance(status[r], str) else None,
            deadline=d("deadline", r), extension_deadline=d("extension_deadline", r),
            equipment_action=action[r] or None,
            documents=[x for x in (docs[r] if isinstance(docs[r], list) else []) if x.strip()],
            department=dept[r] or None,
            capacity=None if pd.isna(cap[r]) else float(cap[r]),
            capacity_unit=unit[r] or None, note=note[r],
        )
        for r in ok
    ]  # one object per accepted row: the changes are applied one by one anyway
    return changes, list(ok), rejected


def latest_events(events: pd.DataFrame, as_of: date | None = None) -> pd.DataFrame:
    """Per case and field the latest event effective on or before ``as_of`` (in memory).

    The frame counterpart of the stores' state query, for notebooks and scripts that keep
    events in memory: ``events`` needs ``case_id, field, after, effective_date`` and an order
    (``event_id`` when present, else row order) that breaks ties of the same date.
    """
    ev = events.copy()
    if "event_id" not in ev:
        ev["event_id"] = np.arange(len(ev))
    eff = pd.to_datetime(ev["effective_date"])
    if as_of is not None:
        ev = ev[eff <= pd.Timestamp(as_of)]
    ev = ev.assign(_eff=pd.to_datetime(ev["effective_date"])).sort_values(
        ["case_id", "field", "_eff", "event_id"])
    last = ev.drop_duplicates(["case_id", "field"], keep="last")
    return last[["case_id", "field", "after", "effective_date"]].reset_index(drop=True)


def exit_dates(events: pd.DataFrame, as_of: date | None = None) -> pd.DataFrame:
    """``case_id, exited_on``: first exit status (cases.toml) on or before ``as_of``."""
    exits = [s.id for s in case_spec().statuses.values() if s.exit]
    ev = events[events["field"].eq("status") & events["after"].isin(exits)]
    eff = pd.to_datetime(ev["effective_date"])
    if as_of is not None:
        ev = ev[eff <= pd.Timestamp(as_of)]
    out = ev.groupby("case_id")["effective_date"].min().rename("exited_on").reset_index()
    return out
