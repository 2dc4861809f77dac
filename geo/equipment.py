"""Equipment inventories (设备清单): one row per production line or unit, for the per-unit rules.

An inventory arrives as the second sheet of the registry XLSX (or a sheet named 设备清单, see
``layers/data/equipment.toml`` [sheet]) or as its own CSV/XLSX file. Each row names its
enterprise by 统一社会信用代码 (or 企业名称 when the row has no code), a unit type, and the
measures the plan's thresholds use, written the way registries write them: ``容积(m³)``,
``公称容量(吨)``, ``直径(米)``, ``电流强度(kA)``, ``年产能`` + ``单位`` (万吨/年, 标张/年,
万平方米/年, 件/年), ``幅宽(米)``, ``车速(米/分)``, ``投产年份``/``使用年限``, ``工艺名称``,
``燃料`` ... Units are converted with the factors of equipment.toml (data, not code).

Steps, all vectorised over the table (string parsing runs once per distinct cell):

1. :func:`read_equipment` reads and validates the rows: unit type, numbers with units,
   yes/no flags, enumerations, dates; a row that cannot be parsed goes to ``rejected`` with
   its row, field and reason (the measure's accepted units or values in the message);
2. :func:`join_units` joins the rows to the accepted enterprises of the registry (by USCC,
   else by a unique name); rows that cannot be joined are rejected too;
3. :func:`derive_unit_fields` adds the fields that depend on the evaluation date or on other
   catalogs: ``unit_text``, ``age_years``, the energy-limit fields of Table 1.

Registry columns that describe one unit (高炉容积, 燃煤锅炉蒸吨, 机组容量, ...; registry.toml
``implicit_unit``) become units too (:func:`registry_units`), so every Table 5 rule reads a
registry and an inventory the same way.
"""

from __future__ import annotations

import io
import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import IO, Any, Final

import numpy as np
import pandas as pd

from geo._unique import by_unique, nfkc
from geo.errors import MissingColumnError, ReferenceDataError, RegistryFormatError
from geo.schema import ISSUE_SEP, REJECTED_COLUMNS
from geo.uscc import normalise_uscc
from layers.catalog import energy_indicators, read_data_toml, unit_types

__all__ = [
    "EquipmentResult",
    "UNIT_KEY_COLUMNS",
    "equipment_spec",
    "equipment_sheet_name",
    "read_equipment",
    "parse_measure",
    "registry_units",
    "join_units",
    "derive_unit_fields",
    "unit_labels",
    "unit_text",
    "UNIT_TEXT_PARTS",
    "describe_units",
    "normalise_text",
]

logger = logging.getLogger(__name__)

_XLSX_MAGIC: Final = b"PK\x03\x04"
_NUMBER_RE: Final = r"^\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)\s*(.*?)\s*$"
_RATIO_RE: Final = r"^\s*1\s*(?::|：|∶|比|/)\s*(\d+(?:\.\d*)?)\s*$"
_YEAR_RE: Final = r"^\s*((?:19|20|21)\d\d)(?:\D.*)?$"

#: Unit columns with a closed vocabulary, kept as pandas categoricals.
ENUM_COLUMNS: Final = ("source", "unit_type", "fuel", "origin", "raw_material", "grade",
                       "energy_indicator_id")

#: Identity columns of a unit row, in order (measures and attributes follow).
UNIT_KEY_COLUMNS: Final = (
    "source", "source_row", "uscc", "name", "unit_id", "unit_type", "unit_type_raw",
    "data_issues",
)


@dataclass
class EquipmentResult:
    """Outcome of :func:`read_equipment`.

    Attributes
    ----------
    units
        :data:`UNIT_KEY_COLUMNS` + one column per measure / number / date / attribute of
        equipment.toml (canonical units; NaN / NA when blank).
    rejected
        ``REJECTED_COLUMNS`` (``source = "equipment"``); one row per unusable row.
    source_rows
        Data rows in the sheet (fully blank lines excluded).
    """

    units: pd.DataFrame
    rejected: pd.DataFrame
    source_rows: int


# --------------------------------------------------------------------------- catalogs


@cache
def equipment_spec() -> dict[str, Any]:
    """The parsed ``layers/data/equipment.toml``."""
    spec = read_data_toml("equipment.toml")
    for key in ("columns", "dimensions", "measures", "attributes", "unit_types", "booleans"):
        if key not in spec:
            raise ReferenceDataError(f"equipment.toml has no [{key}] section.")
    return spec


def normalise_text(values: pd.Series) -> pd.Series:
    """NFKC, lower case, blanks removed, middle dots as '.': the form ``contains`` compares."""
    text = values.astype(object).where(values.notna(), "").astype(str)
    return (
        text.str.normalize("NFKC").str.lower()
        .str.replace(r"\s+", "", regex=True).str.replace(r"[·•・]", ".", regex=True)
    )


def _key(text: str) -> str:
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text)).lower())


def _keys(values: pd.Series) -> pd.Series:
    """:func:`_key` of every cell, computed once per distinct value (columns repeat a few)."""
    codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=False)
    keys = np.asarray([_key(u) for u in uniques], dtype=object)
    return pd.Series(keys[codes] if len(keys) else np.asarray([], dtype=object),
                     index=values.index, dtype=object)


def _norm_header(value: object) -> tuple[str, str]:
    """(header without a trailing bracket, the bracket's content = the column's unit)."""
    text = re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(value)).strip().lower())
    m = re.match(r"^(.*?)\((.*)\)$", text)
    if m and m.group(1):
        return m.group(1), m.group(2)
    return text, ""


@cache
def _header_lookup() -> dict[str, str]:
    spec = equipment_spec()
    lookup: dict[str, str] = {}
    for section in ("columns", "measures", "numbers", "dates", "attributes"):
        for canonical, item in spec.get(section, {}).items():
            for alias in [canonical, *item.get("aliases", [])]:
                lookup.setdefault(_norm_header(alias)[0], canonical)
    lookup.setdefault("单位", "capacity_unit")
    lookup.setdefault("产能单位", "capacity_unit")
    lookup.setdefault("capacity_unit", "capacity_unit")
    return lookup


@cache
def _type_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}
    for tid, item in equipment_spec()["unit_types"].items():
        for alias in [tid, item["name_zh"], *item.get("aliases", [])]:
            lookup.setdefault(_key(alias), tid)
    return lookup


@cache
def _bool_lookup() -> dict[str, bool]:
    words = equipment_spec()["booleans"]
    out = {_key(w): True for w in words["true"]}
    out.update({_key(w): False for w in words["false"]})
    return out


@cache
def _indicator_lookup() -> dict[str, str]:
    out: dict[str, str] = {}
    for ind in energy_indicators():
        for alias in [ind.id, ind.name_zh, *ind.aliases]:
            out.setdefault(_key(alias), ind.id)
    return out


def _issue(code: str, **fields: object) -> str:
    from geo.ingest import issue_message

    return issue_message(code, **fields)


# --------------------------------------------------------------------------- parsing


def parse_measure(
    text: pd.Series,
    measure: str,
    *,
    header_unit: str = "",
    unit_column: pd.Series | None = None,
) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Parse a measure column with units into its canonical unit.

    Parameters
    ----------
    text
        Raw cells (``"300"``, ``"3.2米"``, ``"5.1万吨/年"``).
    measure
        Key of equipment.toml [measures].
    header_unit
        The unit written in the column header's bracket (``容积(m³)`` -> ``m³``).
    unit_column
        Cells of a separate unit column (年产能 + 单位), same index.

    Returns
    -------
    tuple
        ``(value, column, error)``: the value in the canonical unit (NaN when blank or bad),
        the output column it belongs to (the measure itself, or for annual capacity the
        column its unit selects), and an error code per row (``""`` when fine).
    """
    spec = equipment_spec()
    item = spec["measures"][measure]
    dim = spec["dimensions"][item["dimension"]]
    factors = {_key(k): float(v) for k, v in dim["units"].items()}
    columns = {_key(k): str(v) for k, v in dim.get("columns", {}).items()}
    default = _key(item.get("default_unit", ""))
    lo, hi = (float(x) for x in item.get("range", (-np.inf, np.inf)))

    raw = text.astype(object).where(text.notna(), "").astype(str)
    codes, uniques = pd.factorize(raw)
    unit_cells = (
        unit_column.astype(object).where(unit_column.notna(), "").astype(str)
        if unit_column is not None else pd.Series("", index=text.index)
    )
    ucodes, uuniques = pd.factorize(unit_cells)
    pair = codes.astype(np.int64) * (len(uuniques) + 1) + ucodes
    pcodes, puniques = pd.factorize(pair)
    values = np.full(len(puniques), np.nan)
    cols = np.full(len(puniques), measure if not columns else "", dtype=object)
    errors = np.full(len(puniques), "", dtype=object)
    hkey = _key(header_unit)
    for k, p in enumerate(puniques):
        cell = unicodedata.normalize("NFKC", str(uniques[p // (len(uuniques) + 1)])).strip()
        cell = cell.replace(",", "").replace("，", "")
        if not cell:
            continue
        m = re.match(_NUMBER_RE, cell)
        if not m:
            errors[k] = "measure_not_a_number"
            continue
        unit = _key(m.group(2)) or _key(uuniques[p % (len(uuniques) + 1)]) or hkey or default
        if not unit:
            errors[k] = "measure_unit_missing"
            continue
        if unit not in factors:
            errors[k] = "measure_unit_unknown"
            continue
        # decimal arithmetic: "1.1万吨/年" is exactly 11000, not 11000.000000000002, so
        # a value written at a threshold stays at the threshold
        value = float(Decimal(m.group(1)) * Decimal(repr(factors[unit])))
        if not lo <= value <= hi:
            errors[k] = "measure_out_of_range"
            continue
        values[k] = value
        if columns:
            cols[k] = columns[unit]
    index = text.index
    return (
        pd.Series(values[pcodes], index=index, dtype="float64"),
        pd.Series(cols[pcodes], index=index, dtype=object),
        pd.Series(errors[pcodes], index=index, dtype=object),
    )


def _parse_number(text: pd.Series, key: str) -> tuple[pd.Series, pd.Series]:
    item = equipment_spec()["numbers"][key]
    lo, hi = (float(x) for x in item.get("range", (-np.inf, np.inf)))
    norm = text.str.normalize("NFKC").str.strip().str.replace(",", "", regex=False)
    if key == "liquor_ratio":
        ratio = norm.str.extract(_RATIO_RE, expand=False)
        norm = ratio.where(ratio.notna(), norm)
    elif key == "commission_year":
        year = norm.str.extract(_YEAR_RE, expand=False)
        norm = year.where(year.notna(), norm)
    value = pd.to_numeric(norm.where(norm.ne(""), np.nan), errors="coerce").astype("float64")
    bad = norm.ne("") & (value.isna() | ~value.between(lo, hi))
    return value.where(~bad), bad.map({True: "measure_not_a_number", False: ""}).astype(object)


def _parse_date(text: pd.Series) -> tuple[pd.Series, pd.Series]:
    norm = (
        text.str.normalize("NFKC").str.strip()
        .str.replace(r"[年月/.]", "-", regex=True).str.replace("日", "", regex=False)
        .str.replace(r"\s.*$", "", regex=True).str.rstrip("-")
    )
    value = pd.to_datetime(norm.where(norm.ne(""), None), errors="coerce", format="mixed")
    bad = norm.ne("") & value.isna()
    return value.dt.normalize(), bad.map({True: "date_invalid", False: ""}).astype(object)


def _parse_attribute(text: pd.Series, key: str) -> tuple[pd.Series, pd.Series]:
    item = equipment_spec()["attributes"][key]
    return parse_attribute(text, item)


def parse_attribute(text: pd.Series, item: Mapping[str, Any]) -> tuple[pd.Series, pd.Series]:
    """Parse a text / enum / bool / date attribute column (registry or equipment).

    Returns
    -------
    tuple
        ``(values, error)``; text stays NFKC text (``""`` blank), enums become ids and bools
        pandas' nullable ``boolean`` (NA blank), dates ``datetime64`` (NaT blank).
    """
    cells = text.astype(object).where(text.notna(), "").astype(str)
    return by_unique(cells, lambda u: _parse_attribute_cells(u, item))


def _parse_attribute_cells(text: pd.Series, item: Mapping[str, Any]) -> tuple[pd.Series, pd.Series]:
    kind = item["kind"]
    norm = text.str.normalize("NFKC").str.strip()
    if kind == "text":
        return norm, pd.Series("", index=text.index, dtype=object)
    if kind == "date":
        return _parse_date(norm)
    keys = _keys(norm)
    if kind == "bool":
        lookup: Mapping[str, Any] = _bool_lookup()
        values = keys.map(lookup)
        out = pd.array(values.where(values.notna(), None).tolist(), dtype="boolean")
        result = pd.Series(out, index=text.index)
    else:
        lookup = {_key(alias): vid for vid, aliases in item["values"].items()
                  for alias in [vid, *aliases]}
        result = keys.map(lookup).astype(object).where(keys.map(lookup).notna(), "")
    bad = keys.ne("").to_numpy(dtype=bool) & ~keys.isin(list(lookup)).to_numpy(dtype=bool)
    return result, pd.Series(np.where(bad, "value_unknown", ""), index=text.index, dtype=object)


# --------------------------------------------------------------------------- reading


def equipment_sheet_name(data: bytes) -> str | None:
    """Name of the XLSX sheet that holds an equipment inventory, or None.

    A sheet named as in equipment.toml [sheet] wins; otherwise the second sheet.
    """
    if not data.startswith(_XLSX_MAGIC):
        return None
    from openpyxl import load_workbook

    try:
        names = load_workbook(io.BytesIO(data), read_only=True).sheetnames
    except Exception as exc:  # openpyxl raises many types for corrupt files
        raise RegistryFormatError(f"Cannot read the XLSX workbook: {exc}") from exc
    wanted = {_key(n) for n in equipment_spec().get("sheet", {}).get("names", [])}
    for name in names[1:]:
        if _key(name) in wanted:
            return name
    return names[1] if len(names) > 1 else None


def _map_headers(frame: pd.DataFrame) -> tuple[dict[str, str], dict[str, str]]:
    lookup = _header_lookup()
    mapping: dict[str, str] = {}
    units: dict[str, str] = {}
    seen: dict[str, str] = {}
    for raw in frame.columns:
        head, unit = _norm_header(raw)
        canonical = lookup.get(head) or lookup.get(_key(raw))
        if canonical is None:
            continue
        if canonical in seen:
            raise RegistryFormatError(
                f"设备清单 columns '{seen[canonical]}' and '{raw}' both mean '{canonical}': keep one."
            )
        seen[canonical] = str(raw)
        mapping[str(raw)] = canonical
        units[canonical] = unit if lookup.get(head) else ""
    return mapping, units


def read_equipment(
    source: str | Path | IO[bytes] | bytes,
    *,
    filename: str | None = None,
    sheet: str | int | None = None,
) -> EquipmentResult:
    """Read and validate an equipment inventory.

    Parameters
    ----------
    source
        Path, binary file object or bytes of a CSV (UTF-8/GBK) or XLSX.
    filename
        Original file name when reading a buffer.
    sheet
        XLSX sheet; default the equipment sheet of :func:`equipment_sheet_name`, else the first.

    Returns
    -------
    EquipmentResult

    Raises
    ------
    MissingColumnError
        If 设备类型, or both 统一社会信用代码 and 企业名称, are missing.
    RegistryFormatError
        If the file cannot be parsed.
    """
    from geo.ingest import _read_source, _read_table

    data, name = _read_source(source, filename)
    if sheet is None and data.startswith(_XLSX_MAGIC):
        sheet = equipment_sheet_name(data) or 0
    raw = _read_table(data, name, sheet=sheet)
    mapping, header_units = _map_headers(raw)
    present = set(mapping.values())
    found = [str(c) for c in raw.columns]
    cols = equipment_spec()["columns"]
    if "unit_type" not in present:
        raise MissingColumnError("设备类型 (unit_type)", tuple(cols["unit_type"]["aliases"]), found)
    if not {"uscc", "name"} & present:
        accepted = tuple(cols["uscc"]["aliases"]) + tuple(cols["name"]["aliases"])
        raise MissingColumnError("统一社会信用代码 或 企业名称", accepted, found)
    table = raw[list(mapping)].rename(columns=mapping)
    table.index = pd.RangeIndex(2, len(table) + 2, name="row")
    blank = table.apply(lambda col: col.str.strip().eq("")).all(axis=1)
    table = table[~blank]
    result = _parse_table(table, header_units)
    logger.info("read equipment %s: %d rows, %d accepted, %d rejected", name or "(upload)",
                len(table), len(result[0]), len(result[1]))
    return EquipmentResult(units=result[0], rejected=result[1], source_rows=len(table))


def _parse_table(
    table: pd.DataFrame, header_units: Mapping[str, str], *, source: str = "equipment"
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Parse the mapped columns of an inventory; return (units, rejected)."""
    spec = equipment_spec()
    idx = table.index

    def col(key: str) -> pd.Series:
        if key in table:
            return nfkc(table[key].astype(str)).str.strip()
        return pd.Series("", index=idx, dtype=object)

    out: dict[str, pd.Series] = {
        "source": pd.Series(source, index=idx, dtype=object),
        "source_row": pd.Series(np.asarray(idx, dtype=np.int64), index=idx),
        "uscc": normalise_uscc(col("uscc")),
        "name": col("name"),
        "unit_id": col("unit_id"),
    }
    errors: list[tuple[str, str, pd.Series, pd.Series]] = []  # (field label, code, mask, value)
    type_raw = col("unit_type")
    type_id = _keys(type_raw).map(_type_lookup())
    errors.append((spec["columns"]["unit_type"]["label_zh"], "unit_type_missing",
                   type_raw.eq(""), type_raw))
    errors.append((spec["columns"]["unit_type"]["label_zh"], "unit_type_unknown",
                   type_raw.ne("") & type_id.isna(), type_raw))
    out["unit_type"] = type_id.astype(object).where(type_id.notna(), "")
    out["unit_type_raw"] = type_raw

    capacity_cols = sorted(set(spec["dimensions"]["capacity"]["columns"].values()))
    for measure, item in spec["measures"].items():
        if item.get("dimension") == "capacity":
            for c in capacity_cols:
                out[c] = pd.Series(np.nan, index=idx)
        else:
            out[measure] = pd.Series(np.nan, index=idx)
        if measure not in table:
            continue
        unit_col = col(item["unit_column"]) if item.get("unit_column") else None
        value, target, err = parse_measure(
            col(measure), measure, header_unit=header_units.get(measure, ""), unit_column=unit_col
        )
        if item.get("dimension") == "capacity":
            for c in capacity_cols:
                out[c] = value.where(target.eq(c))
        else:
            out[measure] = value
        for code in ("measure_not_a_number", "measure_unit_missing", "measure_unit_unknown",
                     "measure_out_of_range"):
            errors.append((item["label_zh"], code, err.eq(code), col(measure)))
    for key, item in spec.get("numbers", {}).items():
        out[key] = pd.Series(np.nan, index=idx)
        if key in table:
            out[key], err = _parse_number(col(key), key)
            errors.append((item["label_zh"], "measure_not_a_number", err.ne(""), col(key)))
    for key, item in spec.get("dates", {}).items():
        out[key] = pd.Series(pd.NaT, index=idx, dtype="datetime64[ns]")
        if key in table:
            out[key], err = _parse_date(col(key))
            errors.append((item["label_zh"], "date_invalid", err.ne(""), col(key)))
    for key, item in spec["attributes"].items():
        values, err = _parse_attribute(col(key), key)
        out[key] = values
        errors.append((item["label_zh"], "value_unknown", err.ne(""), col(key)))
    # unit types that imply an attribute (燃煤锅炉 -> fuel coal) fill it when blank
    for tid, item in spec["unit_types"].items():
        for attr, value in item.get("implies", {}).items():
            fill = out["unit_type"].eq(tid) & out[attr].eq("")
            out[attr] = out[attr].where(~fill, value)
    # an energy value needs a known indicator
    indicator = _keys(out["energy_indicator"])
    known = indicator.map(_indicator_lookup())
    errors.append((spec["attributes"]["energy_indicator"]["label_zh"], "energy_indicator_unknown",
                   out["energy_value"].notna() & known.isna(), out["energy_indicator"]))
    out["energy_indicator_id"] = known.astype(object).where(known.notna(), "")
    # one extension of at most 3 months (二(一)2): longer is capped and reported
    over = out["extension_months"].gt(3)
    out["extension_months"] = out["extension_months"].clip(upper=3)
    out["data_issues"] = pd.Series("", index=idx, dtype=object).where(
        ~over, "extension_over_3_months"
    )
    units = pd.DataFrame(out, index=idx)

    reason = pd.Series("", index=idx, dtype=object)
    field = pd.Series("", index=idx, dtype=object)
    value = pd.Series("", index=idx, dtype=object)
    for label, code, mask, cells in reversed(errors):
        mask = mask.fillna(False).astype(bool)
        reason = reason.where(~mask, code)
        field = field.where(~mask, label)
        value = value.where(~mask, cells)
    bad = reason.ne("")
    rejected = _rejected_frame(units[bad], reason[bad], field[bad], value[bad], source)
    good = units[~bad].reset_index(drop=True)
    # enumerations as categoricals: the rules engine factorises them for free
    for col in ENUM_COLUMNS:
        good[col] = good[col].astype(object).astype("category")
    return good, rejected


def _accepted_text(code: str, field: str) -> str:
    """What a field accepts, for a rejection message."""
    spec = equipment_spec()
    if code == "unit_type_unknown" or code == "unit_type_missing":
        return "、".join(t["name_zh"] for t in spec["unit_types"].values())
    for item in spec["measures"].values():
        if item["label_zh"] == field:
            dim = spec["dimensions"][item["dimension"]]
            lo, hi = item.get("range", ("", ""))
            return f"数值+单位（{'、'.join(dim['units'])}），换算后应在 {lo}–{hi} {dim['canonical']}"
    for item in spec["attributes"].values():
        if item["label_zh"] == field:
            if item["kind"] == "bool":
                words = spec["booleans"]
                return "是/否（" + "、".join(words["true"] + words["false"]) + "）"
            if item["kind"] == "enum":
                return "、".join(a for v in item["values"].values() for a in v[:2])
            if field == spec["attributes"]["energy_indicator"]["label_zh"]:
                return "、".join(i.name_zh for i in energy_indicators())
    if code == "date_invalid":
        return "日期，如 2019-03-15"
    return "数字"


def _rejected_frame(
    rows: pd.DataFrame, reason: pd.Series, field: pd.Series, value: pd.Series, source: str
) -> pd.DataFrame:
    idx = rows.index
    messages = [
        _issue(reason[r], row=r, field=field[r], value=value[r],
               accepted=_accepted_text(reason[r], field[r]), sheet="设备清单", bounds="")
        for r in idx
    ]
    return pd.DataFrame(
        {
            "row": np.asarray(idx, dtype=np.int64),
            "uscc": rows["uscc"].to_numpy(dtype=object),
            "name": rows["name"].to_numpy(dtype=object),
            "field": field.to_numpy(dtype=object),
            "reason": reason.to_numpy(dtype=object),
            "message": np.asarray(messages, dtype=object),
            "source": source,
        },
        columns=list(REJECTED_COLUMNS),
    )


def empty_units() -> pd.DataFrame:
    """A unit frame with no rows and every column."""
    return _empty_units().copy()


@cache
def _empty_units() -> pd.DataFrame:
    table = pd.DataFrame(
        {"unit_type": pd.Series([], dtype=object), "uscc": pd.Series([], dtype=object)},
        index=pd.RangeIndex(2, 2, name="row"),
    )
    return _parse_table(table, {})[0]


# --------------------------------------------------------------------------- registry units


def registry_units(
    table: pd.DataFrame, header_units: Mapping[str, str]
) -> tuple[pd.DataFrame, pd.Index]:
    """Implicit units from the registry columns registry.toml marks ``implicit_unit``.

    Parameters
    ----------
    table
        The registry's mapped text columns (index = spreadsheet row), including ``uscc`` and
        ``name`` and the numeric columns.
    header_units
        Canonical column -> unit written in its header bracket.

    Returns
    -------
    tuple
        The units: one per non-blank, positive cell, ``source = "registry"``, ``unit_id`` =
        the column's label, ``enterprise_row`` = the registry row; and the registry rows
        whose cell could not be read as a unit (wrong unit, out of range).
    """
    numeric = read_data_toml("registry.toml")["numeric"]
    frames = []
    bad_rows: list[Any] = []
    for key, item in numeric.items():
        imp = item.get("implicit_unit")
        if not imp or key not in table:
            continue
        cells = nfkc(table[key].astype(str)).str.strip()
        keep = cells.ne("")
        if not keep.any():
            continue
        part = pd.DataFrame(
            {
                "uscc": table.loc[keep, "uscc"] if "uscc" in table else "",
                "name": table.loc[keep, "name"] if "name" in table else "",
                "unit_id": equipment_spec()["unit_types"][imp["unit_type"]]["name_zh"] + "（企业名录）",
                "unit_type": equipment_spec()["unit_types"][imp["unit_type"]]["name_zh"],
                imp["measure"]: cells[keep],
            },
            index=cells.index[keep],
        )
        # the header's bracket wins; else the unit the registry column is defined in
        units = {imp["measure"]: header_units.get(key, "") or str(imp.get("unit", ""))}
        if imp.get("capacity_unit"):
            part["capacity_unit"] = imp["capacity_unit"]
        parsed, rejected = _parse_table(part, units, source="registry")
        parsed["enterprise_row"] = part.index[~part.index.isin(rejected["row"])].to_numpy()
        bad_rows += rejected["row"].tolist()
        positive = parsed[_measure_columns(imp["measure"])].gt(0).any(axis=1)
        frames.append(parsed[positive])
    if not frames:
        out = empty_units()
        out["enterprise_row"] = pd.Series([], dtype=np.int64)
        return out, pd.Index(bad_rows)
    return pd.concat(frames, ignore_index=True), pd.Index(sorted(set(bad_rows)))


def _measure_columns(measure: str) -> list[str]:
    spec = equipment_spec()
    if spec["measures"][measure].get("dimension") == "capacity":
        return sorted(set(spec["dimensions"]["capacity"]["columns"].values()))
    return [measure]


# --------------------------------------------------------------------------- join


def join_units(
    units: pd.DataFrame, enterprises: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Join inventory rows to accepted enterprises by USCC, else by a unique name.

    Parameters
    ----------
    units
        :attr:`EquipmentResult.units`.
    enterprises
        Accepted registry rows (``row``, ``uscc``, ``name``).

    Returns
    -------
    tuple
        Units with ``enterprise_row`` (the registry row of their enterprise), and rejected
        rows: a code matching no enterprise, a name matching none or several.
    """
    ent_uscc = enterprises["uscc"].astype(str)
    by_uscc = pd.Series(enterprises["row"].to_numpy(), index=ent_uscc)
    by_uscc = by_uscc[by_uscc.index != ""]
    by_uscc = by_uscc[~by_uscc.index.duplicated(keep="first")]  # as ingest: first row kept
    names = enterprises["name"].astype(str).str.normalize("NFKC").str.strip()
    counts = names.value_counts()
    by_name = pd.Series(enterprises["row"].to_numpy(), index=names)
    by_name = by_name[~by_name.index.duplicated(keep="first")]
    has_code = units["uscc"].astype(str).ne("")
    row_code = units["uscc"].map(by_uscc)
    row_name = units["name"].map(by_name)
    ambiguous = ~has_code & units["name"].map(counts).fillna(0).gt(1)
    joined = row_code.where(has_code, row_name.where(~ambiguous))
    reason = pd.Series("", index=units.index, dtype=object)
    reason = reason.where(~(~has_code & joined.isna()), "unit_enterprise_unknown")
    reason = reason.where(~ambiguous, "unit_enterprise_ambiguous")
    reason = reason.where(~(has_code & joined.isna()), "unit_enterprise_unknown")
    bad = reason.ne("")
    out = units[~bad].copy()
    out["enterprise_row"] = joined[~bad].astype(np.int64)
    rej = units[bad]
    field = np.where(has_code[bad], "统一社会信用代码", "企业名称")
    value = np.where(has_code[bad], rej["uscc"], rej["name"])
    rejected = pd.DataFrame(
        {
            "row": rej["source_row"].to_numpy(dtype=np.int64),
            "uscc": rej["uscc"].to_numpy(dtype=object),
            "name": rej["name"].to_numpy(dtype=object),
            "field": field,
            "reason": reason[bad].to_numpy(dtype=object),
            "message": [
                _issue(c, row=r, field=f, value=v, accepted="", sheet="设备清单", bounds="")
                for c, r, f, v in zip(reason[bad], rej["source_row"], field, value, strict=True)
            ],
            "source": rej["source"].to_numpy(dtype=object),
        },
        columns=list(REJECTED_COLUMNS),
    )
    return out.reset_index(drop=True), rejected


# --------------------------------------------------------------------------- derived fields


def _add_months(days: pd.Series, months: pd.Series) -> pd.Series:
    """Calendar months after a date (month end clipped), vectorised per distinct month count."""
    out = pd.Series(pd.NaT, index=days.index, dtype="datetime64[ns]")
    for m in pd.unique(months.dropna()):
        sel = months.eq(m) & days.notna()
        out[sel] = days[sel] + pd.DateOffset(months=int(m))
    return out


def derive_unit_fields(units: pd.DataFrame, *, as_of: date) -> pd.DataFrame:
    """Add the derived fields of fields.toml that unit rules read.

    ``unit_text`` (id + type as written + process + product), ``age_years`` (使用年限, else
    as_of year - 投产年份), and the Table 1 energy fields: ``energy_limit`` (the sourced limit
    of the row's indicator in force on ``as_of``), ``energy_limit_needed``,
    ``energy_over_limit`` / ``energy_recheck_over_limit`` (value > limit) and
    ``energy_deadline`` (监察日期 + 6 months + extension of at most 3 months).

    Parameters
    ----------
    units
        Parsed units (any subset of the equipment columns; missing ones count as blank).
    as_of
        Evaluation date.
    """
    out = units
    n = len(out)
    new: dict[str, Any] = {}

    def num(col: str) -> np.ndarray:
        # an absent column: a read-only all-NaN view (no 8 bytes per unit written)
        return out[col].to_numpy(dtype="float64", na_value=np.nan) if col in out \
            else np.broadcast_to(np.float64(np.nan), n)

    # unit_text (type as written + process + product) is not built here: the rules engine
    # tests its parts for the candidate rows of a `contains` predicate (UNIT_TEXT_PARTS)
    service, year = num("service_years"), num("commission_year")
    new["age_years"] = np.where(np.isnan(service), as_of.year - year, service) \
        if "service_years" in out else as_of.year - year  # no 使用年限 column: the years only

    # Table 1 energy fields, computed on the rows that report an energy value only
    value, recheck = num("energy_value"), num("energy_recheck_value")
    limit = np.full(n, np.nan)
    needed = np.zeros(n, dtype=bool)
    deadline = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    rows = np.flatnonzero(~np.isnan(value) | ~np.isnan(recheck))
    if len(rows) and "energy_indicator_id" in out:
        inds = {i.id: i for i in energy_indicators()}
        ids = out["energy_indicator_id"].to_numpy(dtype=object)[rows]
        limit[rows] = [
            inds[k].limit if k in inds and inds[k].limit is not None
            and (inds[k].effective is None or inds[k].effective <= as_of) else np.nan
            for k in ids  # the reported rows only (a few per cent of units)
        ]
        needed[rows] = [k in inds and inds[k].status == "value_needed" for k in ids]
    if "inspection_date" in out:
        insp = pd.to_datetime(out["inspection_date"]).iloc[rows]
        ext = pd.Series(num("extension_months")[rows], index=insp.index).fillna(0).clip(0, 3)
        deadline[rows] = _add_months(insp, 6 + ext.round()).to_numpy(dtype="datetime64[ns]")
    new["energy_limit"] = limit
    new["energy_limit_needed"] = pd.arrays.BooleanArray(needed & ~np.isnan(value),
                                                        np.zeros(n, dtype=bool))

    def over(v: np.ndarray) -> pd.arrays.BooleanArray:
        # unknown outside `rows` (no value there): computed on the reporting rows only
        unknown, data = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
        vr, lr = v[rows], limit[rows]
        unknown[rows] = np.isnan(vr) | np.isnan(lr)
        with np.errstate(invalid="ignore"):
            data[rows] = ~unknown[rows] & (vr > lr)
        return pd.arrays.BooleanArray(data, unknown)

    new["energy_over_limit"] = over(value)
    new["energy_recheck_over_limit"] = over(recheck)
    new["energy_deadline"] = deadline
    return _with_columns(out, new)


def _with_columns(frame: pd.DataFrame, new: Mapping[str, Any]) -> pd.DataFrame:
    """``frame`` with the columns ``new`` set (replaced in place or appended, as
    ``frame[name] = values`` would), without modifying ``frame``.

    Appending by one concatenation: each ``DataFrame.__setitem__`` copies its array and
    re-checks it (~2 ms per 600k-row column); a concatenation takes the arrays as they are.
    """
    if any(c in frame.columns for c in new) or not frame.index.is_unique:
        out = frame.copy(deep=False)
        for name, values in new.items():
            out[name] = values
        return out
    return pd.concat([frame, pd.DataFrame(dict(new), index=frame.index, copy=False)], axis=1)


# --------------------------------------------------------------------------- display


#: The columns ``unit_text`` is made of: the type as written, process, product. (Not the
#: unit's id: a name like "平拉1号线" is a label, and testing millions of unique ids for
#: keywords would cost more than it tells.)
UNIT_TEXT_PARTS: Final = ("unit_type_raw", "process", "product")


def unit_text(units: pd.DataFrame) -> pd.Series:
    """``unit_text`` of the given units: their text parts joined by blanks."""
    out = pd.Series("", index=units.index, dtype=object)
    for c in UNIT_TEXT_PARTS:
        if c in units:
            vals = units[c].to_numpy(dtype=object)
            vals = np.where(pd.isna(vals), "", vals)
            if (vals != "").any():
                out = out + " " + vals
    return out


def unit_labels(units: pd.DataFrame) -> pd.Series:
    """Short display name of each unit: its id/name, else type + sheet row."""
    n = len(units)
    raw = units["unit_id"].to_numpy(dtype=object) if "unit_id" in units else np.full(n, "")
    uid = np.where(pd.isna(raw), "", raw).astype(str)
    blank = uid == ""
    if blank.any():  # type + sheet row, built with numpy's string ufuncs on those rows only
        names = unit_types()
        codes, uniq = pd.factorize(units["unit_type"].to_numpy(dtype=object)[blank])
        tname = np.asarray([names.get(u, "设备") for u in uniq] + ["设备"], dtype=str)[codes]
        sheet = np.where(units["source"].to_numpy(dtype=object)[blank] == "registry",
                         "（名录第", "（设备清单第")
        row = units["source_row"].to_numpy()[blank].astype(np.int64).astype(str)
        fallback = np.char.add(np.char.add(np.char.add(tname, sheet), row), "行）")
        uid = uid.astype(object)
        uid[blank] = fallback
    return pd.Series(uid, index=units.index, dtype=object)


def describe_units(units: pd.DataFrame) -> pd.Series:
    """The given measures of each unit as Chinese text ("容积 300 m³；燃料 coal")."""
    spec = equipment_spec()
    parts: list[pd.Series] = []
    if not len(units):
        return pd.Series([], index=units.index, dtype=object)

    def fmt(values: pd.Series, label: str, unit: str) -> pd.Series:
        shown = values.map(lambda v: f"{v:g}").astype(object)
        return (label + " " + shown + (" " + unit if unit else "")).where(values.notna(), "")

    for measure, item in spec["measures"].items():
        dim = spec["dimensions"][item["dimension"]]
        if item.get("dimension") == "capacity":
            unit_names = {"capacity_t_per_year": "吨/年", "capacity_hides_per_year": "标张/年",
                          "capacity_m2_per_year": "平方米/年", "capacity_pieces_per_year": "件/年"}
            for c, u in unit_names.items():
                if c in units:
                    parts.append(fmt(units[c], item["label_zh"], u))
        elif measure in units:
            parts.append(fmt(units[measure], item["label_zh"], dim["canonical"]))
    for key, item in spec.get("numbers", {}).items():
        if key in units:
            parts.append(fmt(units[key], item["label_zh"], ""))
    for key in ("process", "fuel"):
        if key in units:
            vals = units[key].astype(object).where(units[key].notna(), "").astype(str)
            names = {k: v[0] for k, v in spec["attributes"][key].get("values", {}).items()}
            vals = vals.map(lambda v, names=names: names.get(v, v)).astype(object)
            parts.append((spec["attributes"][key]["label_zh"] + " " + vals).where(vals.ne(""), ""))
    if not parts:
        return pd.Series("", index=units.index, dtype=object)
    text = parts[0]
    for p in parts[1:]:
        text = text + "；" + p
    return text.str.replace(r"^；+|；+$", "", regex=True).str.replace(r"；{2,}", "；", regex=True)


def join_issue_codes(*codes: pd.Series) -> pd.Series:
    """``;``-joined non-empty codes, row-wise."""
    out = codes[0].astype(str)
    for c in codes[1:]:
        c = c.astype(str)
        out = (out + ISSUE_SEP + c).str.strip(ISSUE_SEP).str.replace(";;", ";", regex=False)
    return out
