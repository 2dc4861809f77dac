"""Discharge monitoring data: reading, limits, exceedances per period, exceedance lists.

The monitoring stream joins the data flow beside the registry (ARCHITECTURE.md)::

    monitoring file ─► read_monitoring ─► attach_enterprises ─► judge ─► summarise / lists
    (CSV/XLSX)         rows + rejected     (credit code, name)   limits   per enterprise,
                                                                 as data  pollutant, period

* :func:`read_monitoring` reads online-monitoring exports and lab reports (one value per
  row) with the registry reader of :mod:`geo.ingest`; every row is accepted or rejected
  with a reason naming row, field and what was expected (``accepted + rejected == rows``).
* :func:`judge` compares each value with the limit that applies to that enterprise at that
  place and date (``layers/data/limits.toml``): the basin DB44 standard where the plan makes
  it apply, else the national industry standard. An unsourced limit is never compared with;
  where it is unsourced, the national limit is a proven floor (``exceeds_floor``).
* :func:`summarise` counts exceedances per enterprise, pollutant and month or quarter;
  :func:`exceedance_list` and :func:`serious_list` are the 超标排放企业名单 and
  超标排放情节严重企业名单 as of a date.

Everything is column-wise (merges, masks, groupby); no loop runs over rows.
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import IO, Final

import numpy as np
import pandas as pd

from geo.errors import MissingColumnError
from geo.tables import header_lookup, map_headers, parse_numbers, read_table
from geo.schema import REJECTED_COLUMNS
from geo.uscc import normalise_uscc
from layers.casework import MonitoringSpec, limit_catalog, monitoring_spec
from layers.catalog import standards

__all__ = [
    "MONITORING_COLUMNS",
    "JUDGED_COLUMNS",
    "OUTCOMES",
    "MonitoringResult",
    "read_monitoring",
    "attach_enterprises",
    "limits_table",
    "judge",
    "summarise",
    "exceedance_list",
    "serious_list",
    "monitoring_exceedances",
]

logger = logging.getLogger(__name__)

#: Columns of accepted monitoring rows.
MONITORING_COLUMNS: Final = (
    "row", "uscc", "name", "outlet", "pollutant", "sampled_at", "value", "unit",
    "below_detection", "detection_limit", "flow", "discharge",
)

#: Columns :func:`judge` adds.
JUDGED_COLUMNS: Final = (
    "standard", "limit_status", "limit", "limit_low", "limit_high", "limit_source",
    "floor_standard", "floor_limit", "outcome", "ratio", "multiple",
)

#: Outcomes of one comparison. ``exceeds``: above a sourced applicable limit;
#: ``exceeds_floor``: the applicable (basin) limit is unsourced but the value is above the
#: national limit, which the basin limit may not exceed; ``complies``: at or below a sourced
#: limit (or below detection); ``undetermined``: the applicable limit is unsourced and no
#: floor decides; ``no_limit``: no standard in limits.toml sets a limit for it.
OUTCOMES: Final = ("exceeds", "exceeds_floor", "complies", "undetermined", "no_limit")
EXCEEDING: Final = ("exceeds", "exceeds_floor")

_ENTERPRISE_COLUMNS: Final = (
    "uscc", "name", "industry_id", "industry", "city", "district", "basin_id", "region_id",
    "lon", "lat",
)


@dataclass
class MonitoringResult:
    """Outcome of :func:`read_monitoring` (same contract as a registry's ingest)."""

    accepted: pd.DataFrame
    rejected: pd.DataFrame
    source_rows: int


# --------------------------------------------------------------------------- reading


def _rejected(columns: dict[str, object]) -> pd.DataFrame:
    """A rejection report in the registry's REJECTED_COLUMNS (``source`` = monitoring when
    the schema has that column)."""
    frame = pd.DataFrame({**columns, "source": "monitoring"})
    return frame.reindex(columns=list(REJECTED_COLUMNS))


def _norm(values: pd.Series) -> pd.Series:
    return values.str.normalize("NFKC").str.strip().str.lower().str.replace(r"\s+", "", regex=True)


def _nfkc_lower(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", text).strip().lower())


@cache
def _pollutant_lookup() -> dict[str, str]:
    spec = monitoring_spec()
    out: dict[str, str] = {}
    for pid, p in spec.pollutants.items():
        for alias in [pid, p.name_zh, *p.aliases]:
            out.setdefault(_nfkc_lower(alias), pid)
    return out


@cache
def _unit_lookup() -> dict[str, str]:
    """Normalised unit spelling -> canonical spelling of monitoring.toml [units]."""
    out: dict[str, str] = {}
    for dim in monitoring_spec().units.values():
        for unit in [dim["to"], *dim["factors"]]:
            out.setdefault(_nfkc_lower(unit), unit)
    return out


def _pairwise(a: pd.Series, b: pd.Series, fn: Callable[[str, str], object]) -> pd.Series:
    """``fn(a, b)`` evaluated once per distinct pair and mapped back (object Series)."""
    codes, uniques = pd.factorize(pd.MultiIndex.from_arrays([a.to_numpy(), b.to_numpy()]))
    values = np.array([fn(x, y) for x, y in uniques] + [None], dtype=object)
    return pd.Series(values[codes], index=a.index, dtype=object)


def _units_of(pollutant: object) -> str:
    """Accepted unit spellings of a pollutant (for messages)."""
    if not isinstance(pollutant, str):
        return ""
    spec = monitoring_spec()
    target = spec.pollutants[pollutant].unit
    for dim in spec.units.values():
        if dim["to"] == target:
            return "、".join(dict.fromkeys([target, *dim["factors"]]))
    return target


def _at(value: object, row: int) -> object:
    return value[row] if isinstance(value, pd.Series) else value


def _parse_times(text: pd.Series) -> pd.Series:
    cleaned = (
        text.str.normalize("NFKC").str.strip()
        .str.replace(r"(\d)\s*[年/.]\s*(\d)", r"\1-\2", regex=True)
        .str.replace(r"(\d)\s*月\s*(\d)", r"\1-\2", regex=True)
        .str.replace(r"\s*[日号]\s*", " ", regex=True)
        .str.replace(r"(\d{1,2})\s*时\s*(\d{1,2})?\s*分?", r"\1:\2", regex=True)
        .str.replace(r":(\s|$)", r":00\1", regex=True)
        .str.strip()
    )
    return pd.to_datetime(cleaned.where(cleaned.ne(""), None), errors="coerce", format="mixed")


def _parse_values(text: pd.Series, spec: MonitoringSpec) -> pd.DataFrame:
    """Value, below-detection flag and detection limit of text cells."""
    bd = spec.below_detection
    t = text.str.normalize("NFKC").str.strip()
    words = {_nfkc_lower(w) for w in bd["words"]}
    is_word = t.map(_nfkc_lower).isin(words)
    prefix = t.str.startswith(bd["prefix"])
    suffix = t.str.upper().str.endswith(str(bd["suffix"]).upper()) & t.str.len().gt(1)
    number_text = t.where(~prefix, t.str.slice(len(bd["prefix"])))
    number_text = number_text.where(~suffix, number_text.str.slice(0, -len(bd["suffix"])))
    number, bad = parse_numbers(number_text.where(~is_word, ""))
    below = is_word | ((prefix | suffix) & number.notna())
    return pd.DataFrame({
        "value": number.where(~below),
        "below_detection": below,
        "detection_limit": number.where(below),
        "bad": (bad | (t.eq("") & ~is_word)) & ~is_word,
    }, index=text.index)


def _check_required(present: set[str], found: list[str], spec: MonitoringSpec) -> None:
    cols = spec.columns
    for canonical, item in cols.items():
        if item.get("required") == "yes" and canonical not in present:
            raise MissingColumnError(
                f"{item['label_zh']} ({canonical})", tuple(item["aliases"]), found
            )
    if not {"uscc", "name"} & present:
        accepted = tuple(cols["uscc"]["aliases"]) + tuple(cols["name"]["aliases"])
        raise MissingColumnError("统一社会信用代码 或 企业名称 (uscc or name)", accepted, found)


def read_monitoring(
    path_or_buffer: str | Path | IO[bytes] | bytes, *, filename: str | None = None
) -> MonitoringResult:
    """Read and validate a discharge monitoring file (one measured value per row).

    Parameters
    ----------
    path_or_buffer
        CSV (UTF-8 or GBK) or XLSX with Chinese or English headers: 统一社会信用代码 and/or
        企业名称, 排放口, 监测项目, 监测时间, 浓度, 单位, 流量 (optional), 排放方式 (optional).
    filename
        Original file name when reading a buffer.

    Returns
    -------
    MonitoringResult
        ``accepted`` has :data:`MONITORING_COLUMNS` (values converted to the pollutant's
        unit); ``rejected`` has the registry's ``REJECTED_COLUMNS``.

    Raises
    ------
    MissingColumnError
        If 监测项目, 监测时间, 浓度 or both 统一社会信用代码 and 企业名称 are missing.
    RegistryFormatError
        If the file cannot be parsed.
    """
    spec = monitoring_spec()
    raw, name = read_table(path_or_buffer, filename=filename, kind="monitoring file")
    mapping = map_headers(raw, header_lookup(spec.columns))
    _check_required(set(mapping.values()), [str(c) for c in raw.columns], spec)
    table = raw[list(mapping)].rename(columns=mapping)
    table.index = pd.RangeIndex(2, len(table) + 2, name="row")
    table = table[~table.apply(lambda c: c.str.strip().eq("")).all(axis=1)]
    idx = table.index

    def col(key: str) -> pd.Series:
        if key in table:
            return table[key].str.normalize("NFKC").str.strip()
        return pd.Series("", index=idx, dtype=object)

    labels = {k: v["label_zh"] for k, v in spec.columns.items()}
    uscc, ent_name = normalise_uscc(col("uscc")), col("name")
    pollutant = _norm(col("pollutant")).map(_pollutant_lookup())
    sampled = _parse_times(col("sampled_at"))
    vals = _parse_values(col("value"), spec)
    unit_raw = col("unit")
    unit = unit_raw.map(lambda u: _unit_lookup().get(_nfkc_lower(u), u) if u else "")
    factor = _pairwise(pollutant.fillna(""), unit,
                       lambda p, u: spec.unit_factor(p, u) if p else 1.0).astype("float64")
    disc_raw = _norm(col("discharge"))
    disc_map = {_nfkc_lower(w): mode for mode, words in spec.discharge.items() for w in words}
    discharge = disc_raw.map(disc_map).where(disc_raw.ne(""), "direct")
    flow, _ = parse_numbers(col("flow"))

    key = pd.DataFrame({"e": uscc.where(uscc.ne(""), "n:" + ent_name), "o": col("outlet"),
                        "p": pollutant, "t": sampled})
    checks: list[tuple[str, pd.Series, str, pd.Series, str]] = [
        ("enterprise_missing", uscc.eq("") & ent_name.eq(""), labels["name"], ent_name, ""),
        ("pollutant_unknown", pollutant.isna(), labels["pollutant"], col("pollutant"),
         "、".join(p.name_zh for p in spec.pollutants.values())),
        ("time_unparseable", sampled.isna(), labels["sampled_at"], col("sampled_at"), ""),
        ("value_unparseable", vals["bad"], labels["value"], col("value"), ""),
        ("value_negative", vals["value"].lt(0), labels["value"], col("value"), ""),
        ("unit_incompatible", pollutant.notna() & factor.isna(), labels["unit"], unit_raw,
         pollutant.map(_units_of)),
        ("discharge_unknown", discharge.isna(), labels["discharge"], col("discharge"),
         "直接排放、间接排放"),
    ]
    reason = pd.Series("", index=idx, dtype=object)
    for code, mask, *_ in reversed(checks):
        reason = reason.where(~mask, code)
    dup = reason.eq("") & key.duplicated(keep="first")
    reason = reason.where(~dup, "duplicate_sample")
    info = {c[0]: c[2:] for c in checks}
    info["duplicate_sample"] = ("", col("value"), "")
    rej_idx = idx[reason.ne("").to_numpy()]
    messages = [
        spec.issue_message(reason[r], row=r, field=info[reason[r]][0],
                           value=info[reason[r]][1][r], accepted=_at(info[reason[r]][2], r))
        for r in rej_idx
    ]  # messages only for rejected rows, like geo.ingest
    rejected = _rejected({
        "row": np.asarray(rej_idx, dtype=np.int64),
        "uscc": uscc[rej_idx].to_numpy(dtype=object),
        "name": ent_name[rej_idx].to_numpy(dtype=object),
        "field": [info[reason[r]][0] for r in rej_idx],
        "reason": reason[rej_idx].to_numpy(dtype=object),
        "message": np.asarray(messages, dtype=object),
    })

    keep = reason.eq("")
    p_ok = pollutant.where(keep)
    accepted = pd.DataFrame({
        "row": idx.to_numpy(dtype=np.int64),
        "uscc": uscc.astype(str),
        "name": ent_name.astype(str),
        "outlet": col("outlet").astype(str),
        "pollutant": p_ok,
        "sampled_at": sampled,
        "value": vals["value"] * factor,
        "unit": p_ok.map(lambda p: spec.pollutants[p].unit if isinstance(p, str) else ""),
        "below_detection": vals["below_detection"].astype(bool),
        "detection_limit": vals["detection_limit"] * factor,
        "flow": flow,
        "discharge": discharge,
    }, index=idx)[keep.to_numpy()].reset_index(drop=True)
    logger.info("read monitoring %s: %d rows, %d accepted, %d rejected", name or "(upload)",
                len(idx), len(accepted), len(rejected))
    assert len(accepted) + len(rejected) == len(idx)
    return MonitoringResult(accepted=accepted[list(MONITORING_COLUMNS)], rejected=rejected,
                            source_rows=len(idx))


# --------------------------------------------------------------------------- enterprises


def attach_enterprises(
    samples: pd.DataFrame, enterprises: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add each sample's enterprise (industry, place) from the enforcement list.

    Matching: by credit code; a sample without one (or whose code is unknown) by normalised
    enterprise name when exactly one enterprise has that name.

    Returns
    -------
    tuple
        ``(matched, rejected)``: matched samples with the enterprise columns
        (``uscc, name, industry_id, industry, city, district, basin_id, region_id, lon,
        lat``; the registry's name and code replace the file's), and rejected rows
        (``enterprise_not_found`` / ``enterprise_ambiguous``).
    """
    spec = monitoring_spec()
    ent = pd.DataFrame({c: enterprises[c] for c in _ENTERPRISE_COLUMNS if c in enterprises})
    ent = ent.reset_index(drop=True)
    ent["_pos"] = np.arange(len(ent))
    by_code = ent[ent["uscc"].astype(str).ne("")].drop_duplicates("uscc").set_index("uscc")
    pos = samples["uscc"].map(by_code["_pos"]) if len(by_code) else pd.Series(
        np.nan, index=samples.index)
    ent_key = _norm(ent["name"].astype(str))
    counts = ent_key.value_counts()
    unique_names = ent.assign(_k=ent_key)[ent_key.map(counts).eq(1)].set_index("_k")["_pos"]
    sample_key = _norm(samples["name"].astype(str))
    by_name = sample_key.map(unique_names)
    pos = pos.where(pos.notna(), by_name)
    ambiguous = pos.isna() & sample_key.map(counts).gt(1)
    missing = pos.isna()
    label = samples["uscc"].where(samples["uscc"].ne(""), samples["name"]).astype(str)
    reason = np.where(ambiguous, "enterprise_ambiguous", "enterprise_not_found")
    bad = samples[missing]
    rejected = _rejected({
        "row": bad["row"].to_numpy(dtype=np.int64),
        "uscc": bad["uscc"].to_numpy(dtype=object),
        "name": bad["name"].to_numpy(dtype=object),
        "field": spec.columns["name"]["label_zh"],
        "reason": reason[missing.to_numpy()],
        "message": [spec.issue_message(r, row=row, value=v) for r, row, v in
                    zip(reason[missing.to_numpy()], bad["row"], label[missing], strict=True)],
    })
    hit = samples[~missing].reset_index(drop=True)
    picked = ent.iloc[pos[~missing].astype(int).to_numpy()].reset_index(drop=True)
    matched = pd.concat(
        [hit.drop(columns=["uscc", "name"]), picked.drop(columns="_pos")], axis=1
    )
    return matched, rejected


# --------------------------------------------------------------------------- limits


@cache
def limits_table() -> pd.DataFrame:
    """One row per (standard, pollutant, discharge): the least strict sourced value over
    sub-categories, or the unsourced gap.

    Columns: ``standard, kind, pollutant, discharge, status, limit_kind, value, low, high,
    source``; ``pollutant == "*"`` rows cover every pollutant of their standard.
    """
    cat = limit_catalog()
    kind = {s.code: s.kind for s in cat.standards}
    rows = pd.DataFrame([lim.model_dump() for lim in cat.limits])
    rows["kind"] = rows["standard"].map(kind)
    rows["source"] = rows["source"].where(rows["status"].eq("sourced"), rows["note"])
    rows = rows.sort_values(["standard", "pollutant", "discharge", "value"],
                            ascending=[True, True, True, False], na_position="first")
    # least strict: largest max value, widest range (low/high are single-valued today)
    table = rows.drop_duplicates(["standard", "pollutant", "discharge"], keep="first")
    unsourced = rows[rows["status"].eq("unsourced")][["standard", "pollutant", "discharge"]]
    gap = table.merge(unsourced.assign(_gap=True), how="left",
                      on=["standard", "pollutant", "discharge"])["_gap"].fillna(False)
    table = table.reset_index(drop=True)
    table.loc[gap.to_numpy(dtype=bool), ["status", "value", "low", "high"]] = [
        "unsourced", np.nan, np.nan, np.nan]
    cols = ["standard", "kind", "pollutant", "discharge", "status", "limit_kind", "value",
            "low", "high", "source"]
    return table[cols].reset_index(drop=True)


@cache
def _standard_of() -> tuple[dict[tuple[str, str], str], dict[str, str], dict[str, date]]:
    """(basin_id, industry) -> basin standard; industry -> national standard; effective."""
    cat = limit_catalog()
    basins_of = {s.code: s.basins for s in standards()}
    basin: dict[tuple[str, str], str] = {}
    national: dict[str, str] = {}
    for s in cat.standards:
        for ind in s.industries:
            if s.kind == "basin":
                for b in basins_of.get(s.code, []):
                    basin[(b, ind)] = s.code
            else:
                national.setdefault(ind, s.code)
    return basin, national, {s.code: s.effective_existing for s in cat.standards}


def _lookup(frame: pd.DataFrame, std: pd.Series, table: pd.DataFrame) -> pd.DataFrame:
    """Limit row for (standard, pollutant, discharge), else the standard's '*' row."""
    keys = pd.DataFrame({"standard": std.to_numpy(), "pollutant": frame["pollutant"].to_numpy(),
                         "discharge": frame["discharge"].to_numpy()})
    exact = keys.merge(table, how="left", on=["standard", "pollutant", "discharge"])
    star = table[table["pollutant"].eq("*")].drop_duplicates("standard")
    wild = keys[["standard"]].merge(star.drop(columns=["pollutant", "discharge"]),
                                    how="left", on="standard")
    use_wild = exact["status"].isna().to_numpy()
    out = exact.copy()
    for c in ("status", "limit_kind", "value", "low", "high", "source", "kind"):
        out[c] = exact[c].where(~use_wild, wild[c])
    out.index = frame.index
    return out


def _effective(std: pd.Series, when: pd.Series) -> pd.Series:
    eff = std.map({k: pd.Timestamp(v) for k, v in _standard_of()[2].items()})
    return std.notna() & eff.notna() & (when >= eff)


def _compare(value: pd.Series, row: pd.DataFrame) -> pd.Series:
    """True where value is outside a sourced limit row (NaN-safe, False when no limit)."""
    over = value > row["value"]
    outside = (value < row["low"]) | (value > row["high"])
    is_range = row["limit_kind"].eq("range")
    return (over.where(~is_range, outside)).fillna(False).astype(bool)


def judge(samples: pd.DataFrame) -> pd.DataFrame:
    """Compare each sample with the limit that applies to its enterprise, place and date.

    Parameters
    ----------
    samples
        Output of :func:`attach_enterprises` (``pollutant, sampled_at, value, discharge,
        below_detection, detection_limit, industry_id, basin_id`` at least).

    Returns
    -------
    pandas.DataFrame
        ``samples`` plus :data:`JUDGED_COLUMNS`: the applicable standard and its limit
        (status ``sourced`` / ``unsourced`` / ``none``), the national floor when the
        applicable limit is an unsourced basin limit, ``outcome`` (:data:`OUTCOMES`),
        ``ratio`` = value / limit used and ``multiple`` = (value − limit) / limit (超标倍数;
        against the floor for ``exceeds_floor``, a lower bound).
    """
    basin_std, national_std, _ = _standard_of()
    table = limits_table()
    s = samples
    when = pd.to_datetime(s["sampled_at"])
    ind = s["industry_id"].astype(str)
    b_code = _pairwise(s["basin_id"].astype(str), ind, lambda b, i: basin_std.get((b, i)))
    n_code = ind.map(national_std)
    b_code = b_code.where(_effective(b_code, when))
    n_code = n_code.where(_effective(n_code, when))
    applicable = b_code.where(b_code.notna(), n_code)
    app = _lookup(s, applicable, table)
    floor = _lookup(s, n_code.where(b_code.notna()), table)
    floor_ok = floor["status"].eq("sourced")

    value = s["value"].astype("float64")
    below = s["below_detection"].astype(bool)
    dl = s["detection_limit"].astype("float64")
    app_sourced = app["status"].eq("sourced")
    app_exists = app["status"].notna()
    # below detection complies when the detection limit is within a max limit
    below_ok = below & app_sourced & (app["limit_kind"].eq("range") | ~(dl > app["value"]))
    exceeds = app_sourced & ~below & _compare(value, app)
    exceeds_floor = (~app_sourced & app_exists & floor_ok & ~below
                     & _compare(value, floor))
    complies = app_sourced & ~exceeds & (~below | below_ok)
    outcome = np.select(
        [exceeds, exceeds_floor, complies, app_exists],
        ["exceeds", "exceeds_floor", "complies", "undetermined"], default="no_limit",
    )
    used = app["value"].where(app_sourced, floor["value"].where(floor_ok))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (value / used).where(used.notna() & ~below)
    multiple = (ratio - 1).where(pd.Series(outcome, index=s.index).isin(EXCEEDING))
    out = s.copy()
    out["standard"] = applicable.fillna("")
    out["limit_status"] = app["status"].fillna("none")
    out["limit"] = app["value"]
    out["limit_low"] = app["low"]
    out["limit_high"] = app["high"]
    out["limit_source"] = app["source"].fillna("")
    out["floor_standard"] = n_code.where(b_code.notna() & floor_ok).fillna("")
    out["floor_limit"] = floor["value"].where(floor_ok)
    out["outcome"] = outcome
    out["ratio"] = ratio
    out["multiple"] = multiple
    return out


# --------------------------------------------------------------------------- summaries


def _period(ts: pd.Series, period: str) -> pd.Series:
    if period not in ("M", "Q"):
        raise ValueError(f"period: expected 'M' (month) or 'Q' (quarter), got {period!r}")
    return pd.to_datetime(ts).dt.to_period(period).astype(str)


def summarise(judged: pd.DataFrame, *, period: str = "M",
              by: tuple[str, ...] = ("uscc", "name", "basin_id", "pollutant")) -> pd.DataFrame:
    """Exceedance counts and ratios per ``by`` columns and period (ECHO-DMR style).

    Parameters
    ----------
    judged
        Output of :func:`judge`.
    period
        ``"M"`` (month) or ``"Q"`` (quarter).
    by
        Grouping columns besides the period.

    Returns
    -------
    pandas.DataFrame
        ``by + period`` and ``samples`` (all), ``judged`` (decided by a sourced limit or
        the floor), ``exceedances``, ``undetermined`` (a standard applies but its limit is
        unsourced and the floor does not decide), ``no_limit``, ``max_multiple`` and
        ``exceedance_ratio`` = exceedances / (judged + undetermined): the share of samples a
        standard applies to that are proven to exceed -- a lower bound where limits are
        unsourced (NaN when no standard applies).
    """
    df = judged.assign(period=_period(judged["sampled_at"], period))
    oc = df["outcome"]
    df = df.assign(
        _judged=oc.isin(("exceeds", "exceeds_floor", "complies")).astype(int),
        _exc=oc.isin(EXCEEDING).astype(int),
        _und=oc.eq("undetermined").astype(int),
        _nol=oc.eq("no_limit").astype(int),
    )
    keys = [*by, "period"]
    g = df.groupby(keys, sort=True, dropna=False)
    out = g.agg(samples=("outcome", "size"), judged=("_judged", "sum"),
                exceedances=("_exc", "sum"), max_multiple=("multiple", "max"),
                undetermined=("_und", "sum"), no_limit=("_nol", "sum")).reset_index()
    covered = out["judged"] + out["undetermined"]
    with np.errstate(divide="ignore", invalid="ignore"):
        out["exceedance_ratio"] = (out["exceedances"] / covered).where(covered > 0)
    return out


def _window(judged: pd.DataFrame, start: date | None, as_of: date) -> pd.DataFrame:
    ts = pd.to_datetime(judged["sampled_at"])
    lo = pd.Timestamp(start or date(as_of.year, 1, 1))
    hi = pd.Timestamp(as_of) + pd.Timedelta(days=1)
    return judged[(ts >= lo) & (ts < hi)]


_LIST_KEYS: Final = ("uscc", "name", "industry", "city", "district", "basin_id", "region_id")


def exceedance_list(judged: pd.DataFrame, *, as_of: date,
                    start: date | None = None) -> pd.DataFrame:
    """超标排放企业名单: enterprises with at least one exceedance in ``[start, as_of]``.

    ``start`` defaults to 1 January of ``as_of``'s year. One row per enterprise, most
    exceedances first, with the pollutants exceeded (Chinese, with count and largest
    超标倍数), first and last exceedance, the standards compared with, and the number of
    judged samples.
    """
    spec = monitoring_spec()
    w = _window(judged, start, as_of)
    keys = [k for k in _LIST_KEYS if k in w]
    exc = w[w["outcome"].isin(EXCEEDING)]
    cols = [*keys, "pollutants", "exceedances", "judged", "first_exceedance",
            "last_exceedance", "max_multiple", "standards", "floor_only"]
    if exc.empty:
        return pd.DataFrame(columns=cols)
    per_p = exc.groupby([*keys, "pollutant"], sort=False).agg(
        n=("outcome", "size"), m=("multiple", "max")).reset_index()
    per_p["text"] = (per_p["pollutant"].map(lambda p: spec.pollutants[p].name_zh)
                     + "（" + per_p["n"].astype(str) + "次，最大超标"
                     + per_p["m"].round(2).astype(str) + "倍）")
    text = per_p.groupby(keys, sort=False)["text"].agg("；".join)
    judged_n = w[w["outcome"].isin(("exceeds", "exceeds_floor", "complies", "undetermined"))
                 ].groupby(keys, sort=False).size()
    ts = pd.to_datetime(exc["sampled_at"])
    g = exc.assign(_ts=ts).groupby(keys, sort=False)
    out = g.agg(exceedances=("outcome", "size"), first_exceedance=("_ts", "min"),
                last_exceedance=("_ts", "max"), max_multiple=("multiple", "max"),
                standards=("standard", lambda s: "；".join(sorted(set(s)))),
                floor_only=("outcome", lambda s: bool(s.eq("exceeds_floor").all())))
    out["pollutants"] = text
    out["judged"] = judged_n.reindex(out.index).fillna(0).astype(int)
    out = out.reset_index().sort_values(["exceedances", "max_multiple"], ascending=False)
    return out[cols].reset_index(drop=True)


def serious_list(judged: pd.DataFrame, *, as_of: date) -> pd.DataFrame:
    """超标排放情节严重企业名单 as of a date (criteria of monitoring.toml [serious]).

    An enterprise is listed when, within ``window_days`` before ``as_of``, its exceedances
    meet a criterion: of a pollutant of the criterion's class (``*`` = any), with 超标倍数
    at least ``min_multiple``, in at least ``min_months`` distinct calendar months.

    Returns
    -------
    pandas.DataFrame
        One row per enterprise: the enterprise columns, ``criteria`` (ids), ``criteria_zh``
        (labels with their legal basis), ``evidence`` (pollutant, months, largest multiple).
    """
    spec = monitoring_spec()
    start = as_of - timedelta(days=spec.serious_window_days - 1)
    w = _window(judged, start, as_of)
    exc = w[w["outcome"].isin(EXCEEDING)]
    keys = [k for k in _LIST_KEYS if k in exc]
    cols = [*keys, "criteria", "criteria_zh", "evidence"]
    if exc.empty:
        return pd.DataFrame(columns=cols)
    klass = exc["pollutant"].map({p: v.klass for p, v in spec.pollutants.items()})
    month = pd.to_datetime(exc["sampled_at"]).dt.to_period("M").astype(str)
    hits = []
    for c in spec.serious:  # a loop over the few criteria, never over rows
        sel = exc[(klass.eq(c.pollutant_class) | (c.pollutant_class == "*"))
                  & exc["multiple"].ge(c.min_multiple)]
        if sel.empty:
            continue
        g = sel.assign(_m=month[sel.index]).groupby(keys, sort=False).agg(
            months=("_m", "nunique"), m=("multiple", "max"),
            pollutants=("pollutant", lambda s: "、".join(
                sorted({spec.pollutants[p].name_zh for p in s}))))
        g = g[g["months"] >= c.min_months].reset_index()
        g["criterion"] = c.id
        g["label"] = f"{c.label_zh}〔{c.basis}〕"
        g["ev"] = (g["pollutants"] + "：" + g["months"].astype(str) + "个月超标，最大超标"
                   + g["m"].round(2).astype(str) + "倍")
        hits.append(g)
    if not hits:
        return pd.DataFrame(columns=cols)
    allh = pd.concat(hits, ignore_index=True)
    out = allh.groupby(keys, sort=False).agg(
        criteria=("criterion", ";".join), criteria_zh=("label", "；".join),
        evidence=("ev", "；".join)).reset_index()
    return out[cols]


def monitoring_exceedances(
    samples: pd.DataFrame, enterprises: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`attach_enterprises` then :func:`judge`: ``(judged, rejected)``."""
    matched, rejected = attach_enterprises(samples, enterprises)
    return judge(matched), rejected

